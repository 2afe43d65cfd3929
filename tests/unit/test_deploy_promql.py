"""The PromQL reading the deployment tests rely on: every series selector, and nothing else."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.deploy import Selector, selectors

KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2", "by", "without"}
NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,15}", fullmatch=True).filter(lambda n: n not in KEYWORDS)
MATCHERS = st.lists(
    st.tuples(
        NAMES,
        st.sampled_from(["=", "!=", "=~", "!~"]),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E)),
    ),
    max_size=3,
)
AROUND = [
    "{}",
    "rate({}[5m])",
    "sum by (sidecar, le) (rate({}[$__rate_interval])) > 0",
    "histogram_quantile(0.99, {}) > 1e3",
    "{} unless {} offset 10m",
    "max_over_time({}[5m:1m]) == bool 1",
    "count({} == 0) or vector(0)",
]


@given(NAMES, MATCHERS, st.sampled_from(AROUND))
def test_every_selector_is_found_with_its_matchers(
    metric: str, matchers: list[tuple[str, str, str]], around: str
) -> None:
    text = ", ".join(f"{label}{op}{json.dumps(value)}" for label, op, value in matchers)
    selector = f"{metric}{{{text}}}" if matchers else metric
    expected = Selector(metric, tuple(matchers))

    assert selectors(around.format(selector, selector)) == [expected] * around.count("{}")


def test_a_selector_without_a_metric_name_is_refused() -> None:
    with pytest.raises(AssertionError, match="without a metric name"):
        selectors('sum({__name__=~"jwt_.*"})')
