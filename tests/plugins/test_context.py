"""What the elements of a process share: one context in force at a time, and the network pool."""

from __future__ import annotations

from parsing.settings import NetworkSettings
from plugins.context import ProcessContext, current_context, use_context
from plugins.pool import NetworkPool


def test_a_context_is_in_force_for_its_block_then_the_previous_one_again() -> None:
    before = current_context()
    assert current_context() is before  # the default is made once
    run = ProcessContext()
    with use_context(run):
        assert current_context() is run
        inner = ProcessContext()
        with use_context(inner):
            assert current_context() is inner
        assert current_context() is run
    assert current_context() is before


def test_the_sinks_report_to_the_context_hooks() -> None:
    context = ProcessContext()
    assert context.sinks.hooks is context.hooks


def test_networks_differing_only_in_threads_are_loaded_apart(random_weights) -> None:
    pool = NetworkPool()
    try:
        one = NetworkSettings(weights=random_weights["pose"], threads=1)
        two = NetworkSettings(weights=random_weights["pose"], threads=2)
        assert pool.get(one) is pool.get(NetworkSettings(weights=random_weights["pose"]))
        assert pool.get(two) is not pool.get(one)
    finally:
        pool.close()
