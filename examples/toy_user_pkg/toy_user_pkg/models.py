"""The user's model: a small convolutional network for ``channels x size x size`` images."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["SmallCNN"]

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}


class SmallCNN(nn.Module):
    """``conv3x3(channels -> width) -> act -> avgpool2 -> linear(hidden) -> act -> linear(n_classes)``,
    PyTorch's default initialisation."""

    def __init__(self, channels: int = 2, image_size: int = 6, width: int = 6, hidden: int = 16,
                 n_classes: int = 4, activation: str = "tanh"):
        super().__init__()
        if image_size % 2:
            raise ValueError(f"image_size must be even (2x2 pooling), got {image_size}")
        self.conv = nn.Conv2d(channels, width, kernel_size=3, padding=1)
        self.act = _ACTIVATIONS[activation]()
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(width * (image_size // 2) ** 2, hidden)
        self.out = nn.Linear(hidden, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = self.pool(self.act(self.conv(x))).flatten(1)
        return self.out(self.act(self.fc(h)))
