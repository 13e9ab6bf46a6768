"""The transport to Asterisk: ARI (`ari`: REST requests and the Stasis event websocket;
`rest`: the operations call control uses, each written once) and AMI (`ami`: device and
contact events). A leaf: it imports nothing of ours but `errors` and `logs`."""
