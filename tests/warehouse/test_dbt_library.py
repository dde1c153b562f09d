"""The warehouse tests are the package `warehouse`, not `dbt`: inside the test process,
`import dbt` must give the dbt library (a test folder named dbt used to shadow it)."""

from __future__ import annotations

import sysconfig
from pathlib import Path


def test_import_dbt_gives_the_installed_library():
    import dbt
    import dbt.version

    site_packages = Path(sysconfig.get_paths()["purelib"]).resolve()
    assert dbt.__file__ is not None
    assert Path(dbt.__file__).resolve().is_relative_to(site_packages)
    assert Path(dbt.version.__file__).resolve().is_relative_to(site_packages)
    assert dbt.version.__version__
