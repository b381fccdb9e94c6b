"""Until "Restructure phase 1" moves core/quotes.py to core/quotes/read.py, the old module shadows
the new core/quotes/ package; giving it the package's path lets core.quotes.<new module> import.
Remove this file's body once the restructure has landed."""
from pathlib import Path

import core
import core.quotes

if not hasattr(core.quotes, "__path__"):
    core.quotes.__path__ = [str(Path(core.__file__).parent / "quotes")]
