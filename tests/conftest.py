import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")  # tiny tensors; threads only oversubscribe a busy box

# Figures are built unvalidated in the app (ui/figures.py: VALIDATE); the tests, which run the app
# in this process through AppTest, have plotly check every property.
import ui.figures  # noqa: E402

ui.figures.VALIDATE = True
