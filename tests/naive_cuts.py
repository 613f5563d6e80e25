"""What a user gets without diffprune: the naive depth cut (edit config.json and the state dict) and the
independent identity reference (a copy with the weights that write a block's residual updates zeroed), shared by
the traps tests."""

import torch


def naive_depth_cut(model, stack: str, index: int, count_key: str):
    """The stock class with `count_key` lowered and block `index` of `stack` deleted (the later ones renumbered),
    nothing else edited: what a user gets by editing config.json and the state dict."""
    config = {key: value for key, value in model.config.items() if not key.startswith("_")}
    config[count_key] -= 1
    naive = type(model).from_config(config).eval()
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith(stack + "."):
            position, rest = key[len(stack) + 1 :].split(".", 1)
            if int(position) == index:
                continue
            key = f"{stack}.{int(position) - (int(position) > index)}.{rest}"
        state[key] = value
    naive.load_state_dict(state, strict=True)
    return naive


def zeroed(model, parameter_names):
    """A copy of `model` with these parameters set to zero."""
    copy = type(model).from_config(model.config).eval()
    copy.load_state_dict(model.state_dict())
    with torch.no_grad():
        for name in parameter_names:
            copy.get_parameter(name).zero_()
    return copy
