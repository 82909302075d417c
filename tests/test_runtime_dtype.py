"""`--dtype auto|fp32|bf16` (w2v2cli.runtime.resolve_dtype): the `auto` rule per device and CPU kind."""

from __future__ import annotations

import pytest

from w2v2cli.errors import ConfigError
from w2v2cli.runtime import cpu_bf16_units, resolve_dtype


@pytest.mark.parametrize("units, training, want", [
    ("amx", False, "bf16"), ("amx", True, "bf16"),              # AMX matrix units: bf16 everywhere
    ("avx512_bf16", False, "bf16"),                             # Zen 4: bf16 decoding measured 1.7-2.4x fp32
    ("avx512_bf16", True, "bf16"),                              # ... and the pretraining step 1.7x
    ("", False, "fp32"), ("", True, "fp32"),                    # no bf16 units: emulated, ~30x slower
])
def test_auto_rule_on_cpus(units, training, want):
    dtype, why = resolve_dtype("auto", "cpu", training, units=units)
    assert dtype == want and why.startswith("auto: ")


def test_explicit_values_pass_and_bad_ones_are_named():
    assert resolve_dtype("fp32", "cpu", True, units="amx") == ("fp32", "as asked")
    assert resolve_dtype("bf16", "cpu", False, units="") == ("bf16", "as asked")
    with pytest.raises(ConfigError, match="--dtype must be auto, fp32 or bf16, got 'half'"):
        resolve_dtype("half", "cpu", False)


def test_this_machine_is_probed_from_its_flags():
    flags = ""
    with open("/proc/cpuinfo") as f:
        flags = next((line for line in f if line.startswith("flags")), "")
    units = cpu_bf16_units()
    assert units == ("amx" if " amx_bf16" in flags else "avx512_bf16" if " avx512_bf16" in flags else "")
    assert resolve_dtype("auto", "cpu", False) == resolve_dtype("auto", "cpu", False, units=units)
