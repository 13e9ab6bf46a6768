"""Spoken prompts from text: espeak-ng speaks, sox makes it 8 kHz mono, a content hash
names the file.

Flows, queue announcements and feature-code confirmations all carry their prompts as text
(Mandarin by default, English selectable), so an operator changes what callers hear by
editing text, never by recording. The file name is the SHA-256 of (engine version, language,
text), so the same text is generated once and shared; a changed text gets a new file and
never overwrites one a call may be playing. Files are written to a temporary name and
renamed, so Asterisk never reads half a prompt.

Asterisk plays a prompt from its absolute path without the extension:
`Prompts.sound(text, lang)` returns the `sound:` media URI for ARI.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import unicodedata
from pathlib import Path

from ccserver.errors import CCServerError
from ccserver.logs import log

logger = logging.getLogger("ccserver.prompts")

VOICES = {"zh": "cmn", "en": "en-us"}
"""Language codes used in config and flows → espeak-ng voice names."""
DEFAULT_LANGUAGE = "zh"
_RECIPE = "espeak-ng/sox-8k-mono-s16-v1"
"""Part of every hash: change it when the generation recipe changes, so old files are not
mistaken for new ones."""


class PromptError(CCServerError):
    """A prompt could not be generated (unknown language, espeak-ng or sox missing/failing)."""

    slug = "prompt-failed"
    status = 500
    exit_code = 1


def unspeakable(text: str) -> str | None:
    """Why `text` cannot be handed to espeak-ng on its command line, or None: a control
    character other than a line break or tab (a NUL cannot be in an argument at all), or
    half of a surrogate pair (it has no UTF-8 form)."""
    for char in text:
        if char not in "\n\r\t" and unicodedata.category(char) in ("Cc", "Cs"):
            return f"the text has a character that cannot be spoken (U+{ord(char):04X})"
    return None


class Prompts:
    """Generates and caches prompts under `cache_dir` (the run dir's `sounds/prompts`)."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self.generated = 0

    def path(self, text: str, language: str = DEFAULT_LANGUAGE) -> Path:
        """The WAV file speaking `text`, generated on first use."""
        voice = _voice(language)
        problem = unspeakable(text)
        if problem is not None:
            raise PromptError(problem)
        digest = hashlib.sha256(f"{_RECIPE}\0{voice}\0{text}".encode()).hexdigest()[:32]
        target = self.cache_dir / f"{digest}.wav"
        if not target.exists():
            self._generate(text, voice, target)
        return target

    def sound(self, text: str, language: str = DEFAULT_LANGUAGE) -> str:
        """The ARI media URI (`sound:/abs/path` without extension) for `text`."""
        return "sound:" + str(self.path(text, language).with_suffix(""))

    def _generate(self, text: str, voice: str, target: Path) -> None:
        for tool in ("espeak-ng", "sox"):
            if shutil.which(tool) is None:
                raise PromptError(f"{tool} is not installed; run `make setup`")
        if not text.strip():
            raise PromptError("a prompt needs some text")
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        raw = target.with_name(f".{target.stem}.{os.getpid()}.raw.wav")
        tmp = target.with_name(f".{target.stem}.{os.getpid()}.wav")
        try:
            _run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(raw), "--", text])
            # `gain -n -1` normalises first so the 8 kHz resample never clips.
            _run(
                ["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(tmp), "gain", "-n", "-1"]
            )
            os.replace(tmp, target)
        finally:
            raw.unlink(missing_ok=True)
            tmp.unlink(missing_ok=True)
        self.generated += 1
        log(logger, "prompt.generated", file=target.name, voice=voice, chars=len(text))


def _voice(language: str) -> str:
    try:
        return VOICES[language]
    except KeyError:
        known = ", ".join(sorted(VOICES))
        raise PromptError(f"unknown prompt language {language!r} (known: {known})") from None


def _run(argv: list[str]) -> None:
    try:
        subprocess.run(argv, check=True, capture_output=True, timeout=30)
    except subprocess.CalledProcessError as exc:
        err = exc.stderr.decode(errors="replace").strip()[:300]
        raise PromptError(f"{argv[0]} failed (exit {exc.returncode}): {err}") from None
    except subprocess.TimeoutExpired:
        raise PromptError(f"{argv[0]} took longer than 30 s") from None
