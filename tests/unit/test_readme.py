"""The README's configuration reference is Pulumi.yaml's config block: same keys, same defaults."""

import re

from components.settings import declared_config
from tests.support.program import ROOT


def test_the_configuration_reference_lists_exactly_the_declared_settings() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| \w+ \| ([^|]+) \|", readme, re.M))
    declared = declared_config()
    assert set(rows) == set(declared)
    for key, spec in declared.items():
        default = spec.get("default")
        if "default" not in spec:
            assert rows[key].strip() == "*required*", key
        elif default in ("", [], {}):
            assert rows[key].strip() in ("*derived*", "`[]`", "`{}`"), key
        elif isinstance(default, list):
            assert rows[key].strip() == "`" + ", ".join(default) + "`", key
        else:
            assert rows[key].strip() == f"`{str(default).lower() if isinstance(default, bool) else default}`", key
