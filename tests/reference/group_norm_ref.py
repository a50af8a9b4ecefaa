"""torch.nn.GroupNorm's output and gradients for the fixed tiny input that tests/nn/group_norm_test.cpp
checks vd::group_norm_forward / group_norm_backward against (GroupNorm.TinyCaseMatchesTorch).
Run with Debian's /usr/bin/python3 (torch 1.13); it prints C++ initialisers to paste into the test."""
import torch


def show(name, t):
    values = ", ".join(f"{v:.9g}f" for v in t.detach().reshape(-1).tolist())
    print(f"{name} = {{{values}}};")


def main():
    # x [N=1, C=2, S=2], G=1 (both channels one group), eps 1e-5; loss = sum(w * y).
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]], requires_grad=True)
    gn = torch.nn.GroupNorm(1, 2, eps=1e-5, affine=True)
    with torch.no_grad():
        gn.weight.copy_(torch.tensor([0.5, 2.0]))
        gn.bias.copy_(torch.tensor([0.25, -1.0]))
    w = torch.tensor([[[1.0, -2.0], [0.5, 3.0]]])
    y = gn(x)
    (w * y).sum().backward()
    show("y", y)
    show("diff_src", x.grad)
    show("diff_gamma", gn.weight.grad)
    show("diff_beta", gn.bias.grad)


if __name__ == "__main__":
    main()
