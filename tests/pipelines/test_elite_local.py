import math

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from workbench.pipelines.elite import ELITECheckpointError, cross_attention_paths, injected_words
from workbench.pipelines.elite_local import LocalContext, LocalMapping, LocalMappingProcessor, load_local_mapper, local_mapping


def test_local_tokens_average_the_layers_per_patch():
    torch.manual_seed(0)
    mapper = LocalMapping(8, 6, n_layers=2, hidden=16)
    features = [torch.randn(1, 5, 8) for _ in range(2)]
    expected = sum(getattr(mapper, f"mapping_{i}")(f[:, :1]) + getattr(mapper, f"mapping_patch_{i}")(f[:, 1:]) for i, f in enumerate(features)) / 2
    assert torch.allclose(mapper(features), expected, atol=1e-6)
    assert mapper(features).shape == (1, 4, 6)


def test_local_term_known_answer():
    """out = A V + lambda (A_local * a_w / max a_w) V_local, added before the output projection."""
    torch.manual_seed(0)
    attn = Attention(query_dim=8, cross_attention_dim=6, heads=2, dim_head=4)
    hidden, text, tokens = torch.randn(2, 5, 8), torch.randn(2, 3, 6), torch.randn(1, 4, 6)
    k_local, v_local = torch.nn.Linear(6, 8, bias=False), torch.nn.Linear(6, 8, bias=False)
    context = LocalContext(tokens, placeholder_id=0, strength=0.7, positions=torch.tensor([1]))
    processor = LocalMappingProcessor(AttnProcessor2_0(), k_local, v_local, context)
    base = AttnProcessor2_0()(attn, hidden, text)
    got = processor(attn, hidden, text)
    assert torch.equal(got[0], base[0])  # the unconditional row is left alone

    def heads(x):
        return x.view(1, -1, 2, 4).transpose(1, 2)

    q, k = heads(attn.to_q(hidden[1:])), heads(attn.to_k(text[1:]))
    a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(4), -1)
    gate = a[..., 1] / a[..., 1].max()
    a_local = torch.softmax(q @ heads(k_local(tokens)).transpose(-1, -2) / math.sqrt(4), -1) * gate[..., None] * 0.7
    local = (a_local @ heads(v_local(tokens))).transpose(1, 2).reshape(1, 5, 8)
    assert torch.allclose(got[1], base[1] + local[0] @ attn.to_out[0].weight.T, atol=1e-5)


def local_projections(unet, seed=0):
    torch.manual_seed(seed)
    out = {}
    for path in cross_attention_paths(unet).values():
        attn = unet.get_submodule(path)
        out[path] = tuple(torch.nn.Linear(attn.to_k.in_features, attn.to_k.out_features, bias=False) for _ in range(2))
    return out


def run(pipe):
    return pipe(["a S* on a gray background"], num_inference_steps=2, output_type="np", generator=torch.Generator().manual_seed(0)).images


def test_local_mapping_in_a_pipeline(tiny_shapes_fresh):
    pipe = tiny_shapes_fresh
    words, tokens = torch.randn(1, 2, 16), torch.randn(1, 9, 16)
    projections = local_projections(pipe.unet)
    with injected_words(pipe, words):
        plain = run(pipe)
        with local_mapping(pipe, projections, tokens, strength=0.0) as ctx:
            off = run(pipe)
        with local_mapping(pipe, projections, tokens, strength=1.0):
            on = run(pipe)
    assert ctx.positions.tolist() == [2]
    assert (plain == off).all()  # lambda = 0 adds exactly nothing
    assert not (plain == on).all()
    assert not any(type(p).__name__ == "LocalMappingProcessor" for p in pipe.unet.attn_processors.values())


def test_local_mapper_checkpoint_layout(tiny_shapes_fresh, tmp_path):
    unet = tiny_shapes_fresh.unet
    state = dict(LocalMapping(8, 16, n_layers=2, hidden=16).state_dict())
    for prefix, path in cross_attention_paths(unet).items():
        weight = unet.get_submodule(path).to_k.weight
        state[f"{prefix}_to_k.weight"] = torch.randn_like(weight)
        state[f"{prefix}_to_v.weight"] = torch.randn_like(weight)
    torch.save(state, tmp_path / "local_mapper.pt")
    mapper, projections = load_local_mapper(tmp_path / "local_mapper.pt", unet, 8, 16, hidden=16)
    assert mapper.n_layers == 2 and set(projections) == set(cross_attention_paths(unet).values())
    state.pop(next(k for k in state if k.endswith("_to_v.weight")))
    torch.save(state, tmp_path / "broken.pt")
    with pytest.raises(ELITECheckpointError, match="missing keys"):
        load_local_mapper(tmp_path / "broken.pt", unet, 8, 16, hidden=16)


def test_missing_placeholder_is_explained(tiny_shapes_fresh):
    with pytest.raises(ValueError, match="no token 'S\\*'"):
        with local_mapping(tiny_shapes_fresh, {}, torch.randn(1, 4, 16)):
            pass
