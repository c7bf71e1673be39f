"""``python -m ivory_hydra.proxy STORAGE_URL --port N`` (see :mod:`ivory_hydra.proxy`)."""

import sys

from ivory_hydra.proxy import main

sys.exit(main())
