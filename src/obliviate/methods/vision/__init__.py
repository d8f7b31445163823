"""Image-classifier unlearning methods; importing this package registers every module in it.

Each method lives in its own module (one file per method); modules are discovered here so that
adding a method is adding a file.
"""

import importlib
import pkgutil

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if not _mod.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod}")
