"""The recorder of a layer's own attention call: the output keeps its bits, the kept
log-sum-exp is the softmax normaliser over every key, and where torch would not run its CPU
flash kernel the call is left alone."""

import pytest
import torch
import torch.nn.functional as F

from workbench.capture.attention_call import AttentionCallRecorder


def qkv(dtype=torch.float32, requires_grad=False):
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(2, 3, 40, 16, generator=generator, dtype=dtype).requires_grad_(requires_grad) for _ in range(3)]


def direct(q, k, queries, keys):
    scores = (q.float() @ k.float().transpose(-1, -2)) / q.shape[-1] ** 0.5
    return scores.softmax(-1)[:, :, queries, keys]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_recorded_call_keeps_its_output_bits_and_gives_the_normaliser(dtype):
    q, k, v = qkv(dtype)
    expected = F.scaled_dot_product_attention(q, k, v)
    recorder = AttentionCallRecorder()
    with torch.no_grad(), recorder:
        found = F.scaled_dot_product_attention(q, k, v)
    assert torch.equal(found, expected)
    call = recorder.call
    assert call.logsumexp is not None and call.logsumexp.shape == (2, 3, 40)
    tolerance = 1e-6 if dtype == torch.float32 else 1e-3
    assert torch.allclose(call.probabilities(slice(0, 30), slice(30, 40)), direct(q, k, slice(0, 30), slice(30, 40)), atol=tolerance)
    rows = call.rows(slice(1, 2))
    assert torch.allclose(rows.probabilities(slice(30, 40), slice(0, 30)), direct(q, k, slice(30, 40), slice(0, 30))[1:], atol=tolerance)


def test_a_call_recording_a_graph_or_with_a_mask_runs_untouched_and_the_normaliser_is_recomputed():
    q, k, v = qkv(requires_grad=True)
    recorder = AttentionCallRecorder()
    with recorder:
        F.scaled_dot_product_attention(q, k, v)
    assert recorder.call.logsumexp is None  # the kernel's log-sum-exp carries no gradient
    part = recorder.call.probabilities(slice(0, 30), slice(30, 40))
    assert torch.allclose(part, direct(q, k, slice(0, 30), slice(30, 40)), atol=1e-6)
    part.sum().backward()
    assert q.grad is not None and q.grad.abs().sum() > 0

    mask = torch.zeros(40, 40)
    expected = F.scaled_dot_product_attention(q.detach(), k.detach(), v.detach(), attn_mask=mask)
    with torch.no_grad(), recorder:
        found = F.scaled_dot_product_attention(q.detach(), k.detach(), v.detach(), attn_mask=mask)
    assert torch.equal(found, expected) and recorder.call.logsumexp is None


def test_only_the_first_call_is_kept_and_a_causal_one_is_not_read():
    q, k, v = qkv()
    with torch.no_grad(), AttentionCallRecorder() as recorder:
        F.scaled_dot_product_attention(q, k, v)
        F.scaled_dot_product_attention(k, q, v)
    assert recorder.call.query is q and recorder.call.key is k
    with torch.no_grad(), AttentionCallRecorder() as recorder:
        F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert recorder.call is None


def test_under_autocast_the_call_keeps_its_bits_and_dtype():
    q, k, v = qkv()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = F.scaled_dot_product_attention(q, k, v)
        with AttentionCallRecorder() as recorder:
            found = F.scaled_dot_product_attention(q, k, v)
    assert found.dtype == expected.dtype == torch.bfloat16 and torch.equal(found, expected)
    assert recorder.call.logsumexp is None  # autocast casts below the mode: the kernel is not run by hand


def test_a_masked_call_is_read_with_its_mask():
    q, k, v = qkv()
    mask = torch.rand(2, 1, 40, 40, generator=torch.Generator().manual_seed(1)) > 0.3
    mask[..., 0] = True  # every query sees at least one key
    with torch.no_grad(), AttentionCallRecorder() as recorder:
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = (q @ k.transpose(-1, -2)) / 4.0 + torch.zeros(2, 1, 40, 40).masked_fill(~mask, float("-inf"))
    expected = scores.softmax(-1)[:, :, :30, 30:]
    assert torch.allclose(recorder.call.probabilities(slice(0, 30), slice(30, 40)), expected, atol=1e-6)
    assert torch.allclose(recorder.call.rows(slice(1, 2)).probabilities(slice(0, 30), slice(30, 40)), expected[1:], atol=1e-6)
