"""Small ShapesWorld models built from config with fixed seeds."""

from workbench.shapesworld.models.pipeline import ShapesModelConfig, ShapesPipeline, build_components, pipeline_from_components

TINY_CONFIG = ShapesModelConfig(block_out_channels=(8, 16, 16), attention_head_dim=8, text_width=16, text_heads=2)


def tiny_shapes_pipeline(seed: int = 0) -> ShapesPipeline:
    pipe = ShapesPipeline(**build_components(TINY_CONFIG, seed=seed))
    pipe.set_progress_bar_config(disable=True)
    return pipe


TINY_TRANSFORMER = ShapesModelConfig(denoiser="transformer", text_width=16, transformer_layers=2, transformer_heads=2, transformer_head_dim=8)


def tiny_shapes_transformer(seed: int = 0) -> ShapesPipeline:
    """The ShapesWorld transformer pipeline's architecture (joint attention), tiny and random."""
    pipe = pipeline_from_components(build_components(TINY_TRANSFORMER, seed=seed))
    pipe.set_progress_bar_config(disable=True)
    return pipe
