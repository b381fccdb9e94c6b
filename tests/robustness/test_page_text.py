"""Issue 13 items 14-15: file names reach the page as literal text; the server listens on localhost."""
import re
import tomllib
from pathlib import Path


from ui.text import plain

ROOT = Path(__file__).resolve().parents[2]
EVIL = "**bold** [link](http://evil.example) <b>x</b> `code` #h.csv"


def unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def test_plain_escapes_every_markdown_special_and_round_trips():
    out = plain(EVIL + "\n- item")
    assert "**" not in out.replace("\\*", "") and "[" not in out.replace("\\[", "")
    assert "<" not in out.replace("\\<", "") and "`" not in out.replace("\\`", "")
    assert unescape(out) == " ".join((EVIL + "\n- item").split())


def upload(name: str, data: bytes):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.switch_page("pages/4_quotes.py").run()
    at.radio(key="quotes_source").set_value("Upload a file").run()
    at.file_uploader(key="quotes_file").set_value((name, data, "text/csv")).run()
    return at


def test_uploaded_file_name_reaches_st_error_escaped():
    at = upload(EVIL, b"")
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.error) == 1
    value = at.error[0].value
    assert "\\*\\*bold\\*\\*" in value and "\\[link\\]" in value and "\\<b\\>" in value, value
    assert "**bold**" in unescape(value)


def test_streamlit_listens_on_localhost_by_default_and_docs_say_how_to_serve():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "localhost"
    docs = (ROOT / "docs" / "robustness.md").read_text()
    assert "--server.address" in docs
