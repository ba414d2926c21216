import pytest
import torch

from workbench.capture import trace
from workbench.pipelines.elite import ELITECheckpointError, GlobalMapping, cross_attention_paths, injected_words, load_global_mapper
from workbench.pipelines.loading import load_pipeline
from workbench.pipelines.random_pipelines import save_random_pipeline


def test_each_word_maps_its_layers_cls_plus_mean_patch():
    torch.manual_seed(0)
    mapper = GlobalMapping(input_dim=8, output_dim=6, n_words=3, hidden=16)
    features = [torch.randn(2, 5, 8) for _ in range(3)]
    words = mapper(features)
    assert words.shape == (2, 3, 6)
    expected = mapper.mapping_1(features[1][:, :1]) + mapper.mapping_patch_1(features[1][:, 1:]).mean(1, keepdim=True)
    assert torch.allclose(words[:, 1:2], expected)
    with pytest.raises(ValueError, match="expected features of 3 layers"):
        mapper(features[:2])


def elite_checkpoint(unet, path, n_words=2, hidden=16, extra=None, drop=None):
    torch.manual_seed(1)
    state = dict(GlobalMapping(8, 32, n_words=n_words, hidden=hidden).state_dict())
    for prefix, module_path in cross_attention_paths(unet).items():
        attn = unet.get_submodule(module_path)
        state[f"{prefix}_to_k.weight"] = torch.randn_like(attn.to_k.weight)
        state[f"{prefix}_to_v.weight"] = torch.randn_like(attn.to_v.weight)
    state.update(extra or {})
    for key in drop or []:
        state.pop(key)
    torch.save(state, path)
    return state


@pytest.fixture(scope="module")
def sd(tmp_path_factory):
    return load_pipeline(save_random_pipeline("sd15", tmp_path_factory.mktemp("sd")))


def test_released_layout_loads_mapping_and_projections(sd, tmp_path):
    state = elite_checkpoint(sd.unet, tmp_path / "global_mapper.pt")
    mapper = load_global_mapper(tmp_path / "global_mapper.pt", sd.unet, input_dim=8, output_dim=32, hidden=16)
    assert mapper.n_words == 2
    assert torch.equal(mapper.mapping_0[0].weight, state["mapping_0.0.weight"])
    key = "down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.weight"
    assert torch.equal(sd.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn2.to_k.weight, state[key])


def test_keys_that_do_not_fit_are_listed(sd, tmp_path):
    elite_checkpoint(sd.unet, tmp_path / "bad.pt", extra={"surprise.weight": torch.zeros(1)}, drop=["mid_block_attentions_0_transformer_blocks_0_attn2_to_v.weight"])
    with pytest.raises(ELITECheckpointError, match=r"missing keys \['mid_block_attentions_0_transformer_blocks_0_attn2_to_v.weight'\], unexpected keys \['surprise.weight'\]"):
        load_global_mapper(tmp_path / "bad.pt", sd.unet, input_dim=8, output_dim=32, hidden=16)


def test_mapper_files_that_would_need_unpickling_or_are_damaged_are_refused_by_name(sd, tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"mapping_0.0.weight": Payload()}, tmp_path / "pickled.pt")
    with pytest.raises(ELITECheckpointError, match=r"pickled.pt holds Python objects .*refers to print.*it was not executed") as caught:
        load_global_mapper(tmp_path / "pickled.pt", sd.unet, input_dim=8, output_dim=32, hidden=16)
    assert "weights_only" not in str(caught.value)  # torch's advice to unpickle is not passed on
    (tmp_path / "cut.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    (tmp_path / "cut.pt").write_bytes(b"PK\x03\x04 not a zip")
    for name, kind in (("cut.safetensors", "safetensors"), ("cut.pt", "torch")):
        with pytest.raises(ELITECheckpointError, match=f"{name}: not a readable {kind} file"):
            load_global_mapper(tmp_path / name, sd.unet, input_dim=8, output_dim=32, hidden=16)


def test_words_take_the_placeholder_slots_and_shift_later_tokens(tiny_shapes_fresh):
    pipe = tiny_shapes_fresh
    words = torch.randn(2, 3, 16)
    prompts = ["a S* on a gray background", "a S* on a striped background"]
    seen = []
    with injected_words(pipe, words) as ids:
        # registered after the injection hook, so it sees what the text encoder receives
        handle = pipe.text_encoder.get_input_embeddings().register_forward_hook(lambda m, i, o: seen.append((i[0], o)))
        with trace(pipe) as tr:
            pipe(prompts, num_inference_steps=2, output_type="np", generator=torch.Generator().manual_seed(0))
        handle.remove()
    input_ids, embedded = seen[0]
    assert input_ids[0, 2:5].tolist() == ids  # S*, S*_1, S*_2 in slots 2..4
    assert torch.equal(embedded[1, 2:5], words[1])
    assert pipe.tokenizer.convert_ids_to_tokens(input_ids[0, 5:7].tolist()) == ["on", "a"]  # shifted by two
    maps = tr.attention_maps()
    assert maps.word_span("S*", prompt=1).tokens == (2, 3, 4)
    with pytest.raises(ValueError, match="2 rows but words were given for 3 images"):
        with injected_words(pipe, torch.randn(3, 3, 16)):
            pipe(prompts, num_inference_steps=1, output_type="np")


def test_words_of_the_wrong_width_are_refused_before_any_token_is_added(tiny_shapes_fresh):
    with pytest.raises(ValueError, match="words for text_encoder have width 8; it embeds tokens with width 16"):
        with injected_words(tiny_shapes_fresh, torch.randn(1, 2, 8)):
            pass
    assert "S*" not in tiny_shapes_fresh.tokenizer.get_vocab()


def test_sdxl_words_are_written_into_both_encoders_through_their_own_tokenizers(tmp_path):
    from workbench.pipelines.random_pipelines import build_random_pipeline

    pipe = build_random_pipeline("sdxl", tmp_path, tokenizer="bpe")
    widths = {name: getattr(pipe, name).get_input_embeddings().embedding_dim for name in ("text_encoder", "text_encoder_2")}
    words = {name: torch.randn(2, 3, width) for name, width in widths.items()}
    with injected_words(pipe, words) as slots:
        for name, tokenizer in (("text_encoder", pipe.tokenizer), ("text_encoder_2", pipe.tokenizer_2)):
            ids = tokenizer(["a S* S*_1 S*_2 dog"] * 2, return_tensors="pt").input_ids
            embedded = getattr(pipe, name).get_input_embeddings()(ids)
            positions = [ids[0].tolist().index(i) for i in tokenizer.convert_tokens_to_ids(["S*", "S*_1", "S*_2"])]
            assert torch.equal(embedded[:, positions], words[name])
    assert slots == pipe.tokenizer.convert_tokens_to_ids(["S*", "S*_1", "S*_2"])
    with pytest.raises(ValueError, match=r"the same examples and n_words; got \{'text_encoder': \(2, 3, \d+\), 'text_encoder_2': \(2, 2, \d+\)\}"):
        with injected_words(pipe, {"text_encoder": words["text_encoder"], "text_encoder_2": words["text_encoder_2"][:, :2]}):
            pass
    with pytest.raises(ValueError, match="words for text_encoder_2 have width 5"):
        with injected_words(pipe, {"text_encoder": words["text_encoder"], "text_encoder_2": torch.randn(2, 3, 5)}):
            pass
