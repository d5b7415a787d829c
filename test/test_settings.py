"""One parser of a setting's value: the command line and the benchmark's specs read it alike."""

import argparse
import dataclasses

import pytest

from evaluation.benchmark import parse_spec
from model.settings import (
    AUTO,
    GroupedSettings,
    add_settings_options,
    auto_or_float,
    auto_or_int,
    group,
    parse_bool,
    setting_fields,
    setting_values,
)
from model.trackers.xmem import XMemSettings


def test_auto_or_a_number():
    assert auto_or_float("auto") == AUTO and auto_or_float(" Auto ") == AUTO
    assert auto_or_float("20") == 20.0 and auto_or_float(0.5) == 0.5
    with pytest.raises(ValueError, match="'auto' or a number"):
        auto_or_float("wide")


def test_auto_or_a_whole_number():
    assert auto_or_int("AUTO") == AUTO and auto_or_int("256") == 256 and auto_or_int(192) == 192
    for text in ("wide", "25.5", 25.5, True):
        with pytest.raises(ValueError, match="'auto' or a whole number"):
            auto_or_int(text)
    assert parse_spec("xmem[crop-size=auto]")[1] == {"crop_size": AUTO}
    assert parse_spec("xmem[crop-size=256]")[1] == {"crop_size": 256}


def test_booleans_spelled_on_off():
    assert [parse_bool(text) for text in ("on", "Yes", "1", "true")] == [True] * 4
    assert [parse_bool(text) for text in ("off", "no", "0", "False")] == [False] * 4
    with pytest.raises(ValueError):
        parse_bool("maybe")


def test_command_line_and_spec_give_the_same_settings():
    parser = argparse.ArgumentParser()
    add_settings_options(parser, XMemSettings)
    options = vars(parser.parse_args(["--margin-mm", "20", "--ema-weight", "auto", "--no-flow-fallback"]))
    _, spec = parse_spec("xmem[margin-mm=20,ema-weight=auto,flow-fallback=off]")
    assert (
        {name: options[name] for name in spec}
        == spec
        == {
            "margin_mm": 20.0,
            "ema_weight": AUTO,
            "flow_fallback": False,
        }
    )
    assert XMemSettings(**spec).window.margin_mm == 20.0
    assert XMemSettings(margin_mm="12").window.margin_mm == 12.0
    with pytest.raises(ValueError, match="margin-mm"):
        parse_spec("xmem[margin-mm=wide]")
    with pytest.raises(SystemExit):
        parser.parse_args(["--margin-mm", "wide"])


def test_grouped_settings_are_set_by_name_and_read_by_group():
    settings = XMemSettings(prior_weight=0.5, max_flow_shift=0.2, mem_every=3, margin_mm="12")
    assert settings.motion.prior_weight == 0.5 and settings.guards.max_flow_shift == 0.2
    assert settings.network.mem_every == 3 and settings.window.margin_mm == 12.0
    assert settings.arbitration == XMemSettings().arbitration  # untouched groups keep their defaults
    values = setting_values(settings)
    assert [name for name in values] == [field.name for field in setting_fields(XMemSettings)]
    assert XMemSettings(**values) == settings
    with pytest.raises(TypeError, match="prior_wieght"):
        XMemSettings(prior_wieght=0.5)
    with pytest.raises(ValueError, match="prior_weight"):  # each group checks its own values
        XMemSettings(prior_weight=2.0)


def test_a_setting_name_in_two_groups_is_refused():
    @dataclasses.dataclass(frozen=True)
    class First:
        level: float = 1.0

    @dataclasses.dataclass(frozen=True)
    class Second:
        level: float = 2.0

    @dataclasses.dataclass(frozen=True, init=False)
    class Both(GroupedSettings):
        first: First = group(First)
        second: Second = group(Second)

    with pytest.raises(TypeError, match="two groups"):
        setting_fields(Both)
