"""ccserver: an open contact-center server for utility hotlines, on Asterisk."""
