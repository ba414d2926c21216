"""Small ShapesWorld models built from config with fixed seeds."""

from workbench.shapesworld.models.pipeline import ShapesModelConfig, ShapesPipeline, build_components

TINY_CONFIG = ShapesModelConfig(block_out_channels=(8, 16, 16), attention_head_dim=8, text_width=16, text_heads=2)


def tiny_shapes_pipeline(seed: int = 0) -> ShapesPipeline:
    pipe = ShapesPipeline(**build_components(TINY_CONFIG, seed=seed))
    pipe.set_progress_bar_config(disable=True)
    return pipe
