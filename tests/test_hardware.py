"""Native-bfloat16 detection from cpuinfo, and the once-per-process slow-half warning."""

import warnings

import pytest

from ccs_fno.nn import hardware

SAPPHIRE_RAPIDS = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu vme sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8

processor\t: 1
flags\t\t: fpu vme sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8
"""
COOPER_LAKE_ONE_CORE = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n"
SKYLAKE = """processor\t: 0
flags\t\t: fpu vme sse2 avx2 avx512f avx512bw avx512_vnni

processor\t: 1
flags\t\t: fpu vme sse2 avx2 avx512f avx512bw avx512_vnni
"""
MIXED = "processor\t: 0\nflags\t: avx512_bf16\n\nprocessor\t: 1\nflags\t: avx2\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd bf16\n"


@pytest.mark.parametrize(
    ("cpuinfo", "native"),
    [
        (SAPPHIRE_RAPIDS, True),
        (COOPER_LAKE_ONE_CORE, True),
        (SKYLAKE, False),
        (MIXED, False),
        (ARM, False),
        ("", False),
    ],
)
def test_native_bf16_from_cpuinfo_flags(cpuinfo, native):
    assert hardware.cpu_has_native_bf16(cpuinfo) is native


def test_flags_are_whole_words():
    assert hardware.cpu_flags("flags\t: avx512_bf16x amx_bf16_ish\n") == [
        frozenset({"avx512_bf16x", "amx_bf16_ish"})
    ]
    assert not hardware.cpu_has_native_bf16("flags\t: avx512_bf16x amx_bf16_ish\n")


def test_this_machine_reads_proc_cpuinfo(monkeypatch, tmp_path):
    hardware._this_cpu_has_native_bf16.cache_clear()
    monkeypatch.setattr(hardware, "CPUINFO", tmp_path / "cpuinfo")
    assert hardware.cpu_has_native_bf16() is False  # unreadable: not native
    hardware._this_cpu_has_native_bf16.cache_clear()
    (tmp_path / "cpuinfo").write_text(SAPPHIRE_RAPIDS)
    assert hardware.cpu_has_native_bf16() is True
    hardware._this_cpu_has_native_bf16.cache_clear()


@pytest.fixture
def slow_cpu(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda cpuinfo=None: False)
    monkeypatch.setattr(hardware, "_warned", set())


def test_warns_once_for_half_or_mixed_on_a_cpu_without_bf16(slow_cpu):
    with pytest.warns(hardware.SlowPrecisionWarning, match=r"7\.6x slower.*--precision full") as record:
        assert hardware.warn_if_slow_half("half", "cpu") is True
    assert len(record) == 1 and "precision='half'" in str(record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any further warning would raise
        assert hardware.warn_if_slow_half("mixed", "cpu") is False
        assert hardware.warn_if_slow_half("half", "cpu") is False


@pytest.mark.parametrize(("precision", "device"), [("full", "cpu"), ("half", "cuda"), ("mixed", "cuda:0")])
def test_no_warning_for_full_or_cuda(slow_cpu, precision, device):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert hardware.warn_if_slow_half(precision, device) is False


def test_no_warning_on_a_cpu_with_native_bf16(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda cpuinfo=None: True)
    monkeypatch.setattr(hardware, "_warned", set())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert hardware.warn_if_slow_half("half", "cpu") is False
