"""Importing the domain logic reads no file, and the provider registry is parsed once per process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from stars_assets import settings
from stars_assets.lib import providers

# Imports every module under stars_assets/lib with an audit hook on, and prints the files of the
# package (provider YAML) or of the data folder (CMS tables) that were opened.
IMPORT_EVERY_LIB_MODULE = textwrap.dedent("""
    import importlib, json, os, pkgutil, sys
    from stars_assets import settings
    watched = (str(settings.PACKAGE_ROOT) + os.sep, str(settings.PROJECT_ROOT / "data") + os.sep)
    opened = []
    def hook(event, args):
        path = os.path.abspath(args[0]) if event == "open" and isinstance(args[0], str) else ""
        if path.startswith(watched) and not path.endswith((".py", ".pyc")):
            opened.append(path)
    import stars_assets.lib as lib
    names = [m.name for m in pkgutil.walk_packages(lib.__path__, "stars_assets.lib.")]
    sys.addaudithook(hook)
    for name in names:
        importlib.import_module(name)
    print(json.dumps({"modules": names, "opened": opened}))
""")


def test_no_lib_module_reads_a_file_at_import():
    output = subprocess.run([sys.executable, "-c", IMPORT_EVERY_LIB_MODULE], capture_output=True, text=True, check=True).stdout
    report = json.loads(output.strip().splitlines()[-1])
    assert "stars_assets.lib.silver.contracts" in report["modules"] and len(report["modules"]) > 30
    assert report["opened"] == []


def test_the_provider_registry_is_parsed_once_per_process(monkeypatch):
    parsed = []
    real = providers.load_provider
    monkeypatch.setattr(providers, "load_provider", lambda path: parsed.append(path) or real(path))
    providers._load_folder.cache_clear()
    try:
        first = providers.load_registry()
        assert providers.load_registry() is first
        assert providers.load_registry(settings.providers_dir()) is first
        assert sorted(parsed) == sorted(settings.providers_dir().glob("*.yaml")) and len(parsed) == len(first) > 0
    finally:
        providers._load_folder.cache_clear()
