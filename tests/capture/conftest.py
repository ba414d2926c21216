"""Fixtures of the capture tests."""

import pytest

from workbench.capture.attention_call import AttentionCall


@pytest.fixture
def normaliser_reads(monkeypatch) -> list[bool]:
    """One entry per joint-attention read from the layer's own call: whether it used the
    kernel's log-sum-exp (True) or recomputed the normaliser (False)."""
    reads: list[bool] = []
    original = AttentionCall.probabilities

    def spy(self, queries, keys):
        reads.append(self.logsumexp is not None)
        return original(self, queries, keys)

    monkeypatch.setattr(AttentionCall, "probabilities", spy)
    return reads
