"""Issue 13 item 4: malformed weights and manifests are refused at load with one line (WeightsError),
through the loaders, core.repair, the CLI and the app (which keeps the weights-free methods)."""
import numpy as np
import pytest

import core
from core.cli import main
from core.repairers.weights import WeightsError
from tests.robustness.weights_cases import CASES, RAW, write_case

ALL = sorted(CASES) + sorted(RAW)
LOADERS = {"best": "core.repairers.best:load", "cnn": "core.repairers.cnn:load_cnn",
           "vae": "core.repairers.vae:load_vae"}


def _loader(method):
    import importlib

    module, name = LOADERS[method].split(":")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("case", ALL)
def test_loader_refuses_with_one_line(tmp_path, case):
    method, path = write_case(case, tmp_path)
    with pytest.raises(WeightsError) as info:
        _loader(method)(path)
    message = str(info.value)
    assert "\n" not in message and path.stem in message, message
    assert "weights_only=False" not in message


@pytest.mark.parametrize("case", ["best mu wrong size", "vae sd_scale negative", "cnn width 1e7", "pickle payload"])
def test_repair_and_cli_refuse(tmp_path, capsys, case):
    method, path = write_case(case, tmp_path)
    iv = np.full((13, 17), np.nan)
    iv[::3, ::4] = 0.2
    with pytest.raises(WeightsError):
        core.repair(iv, method, weights=str(path))
    from core.settings import SAMPLES_DIR

    code = main(["repair", str(SAMPLES_DIR / "quotes_iv.csv"), "--method", method, "--weights", str(path),
                 "--no-stale", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "unexpected" not in err[0], err


def test_shipped_weights_still_load():
    from core.repairers import best, cnn, vae
    from core.settings import WEIGHTS_DIR

    assert best.load(WEIGHTS_DIR / "best.pt")[0].rank > 0
    cnn.load_cnn(WEIGHTS_DIR / "cnn.pt")
    assert vae.load_vae(WEIGHTS_DIR / "vae.pt")[1] > 0


@pytest.mark.parametrize("best_case,cnn_case", [("best conformal without keys", "cnn depth string"),
                                                ("best state is a tensor", "cnn width 1e7"),
                                                ("best config not a dict", "cnn model not a dict")])
def test_app_pages_survive_bad_weights_env(tmp_path, monkeypatch, best_case, cnn_case):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    _, best_path = write_case(best_case, tmp_path)
    _, cnn_path = write_case(cnn_case, tmp_path)
    monkeypatch.setenv("REPAIR_BEST_WEIGHTS", str(best_path))
    monkeypatch.setenv("REPAIR_CNN_WEIGHTS", str(cnn_path))
    root = Path(__file__).resolve().parents[2]
    at = AppTest.from_file(str(root / "app.py"), default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    shown = " ".join(w.value for w in at.warning)
    assert "Best unavailable" in shown and "CNN unavailable" in shown, shown
    at.switch_page("pages/4_quotes.py").run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="quotes_method").set_value("interp").run()
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    for page in ("pages/1_explorer.py", "pages/2_benchmark.py", "pages/3_diagnostics.py"):
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])


def test_missing_weights_name_the_train_command(tmp_path):
    from core.repairers import best

    with pytest.raises(WeightsError, match=r"python -m core\.cli train best"):
        best.load(tmp_path / "best.pt")


def test_oversized_file_is_refused_before_loading(tmp_path, monkeypatch):
    from core.repairers import weights

    monkeypatch.setattr(weights, "MAX_WEIGHTS_BYTES", 1000)
    _, path = write_case("best tau2 wrong size", tmp_path)
    with pytest.raises(WeightsError, match="larger than"):
        weights.load_state(path, "best")
