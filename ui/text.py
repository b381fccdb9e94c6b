"""Text from users (file names, messages that quote them) shown through Streamlit's markdown."""
from __future__ import annotations

import re

# Every ASCII punctuation character CommonMark lets a backslash escape, plus the HTML angle
# brackets: a file named "**x**.csv" or "[a](javascript:...)" must show as typed, not render.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&])")


def plain(text) -> str:
    """``text`` as one line of literal markdown: whitespace collapsed, markdown syntax escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))
