import pytest
import torch

from engine.model import StudyCNN, count_parameters, to_input
from store import LAYERS


def test_parameter_count():
    assert count_parameters(StudyCNN()) == 27_010


@pytest.mark.parametrize("batch", [1, 7])
def test_outputs_have_the_study_shapes(batch, fresh_torch_seed):
    images = torch.randint(0, 256, (batch, 28, 28), dtype=torch.uint8)
    out = StudyCNN()(to_input(images))
    assert out.original.shape == (batch, 784)
    for layer, shape in LAYERS.items():  # the store's layout is the network's
        assert getattr(out, layer).shape == (batch, *shape)
    assert out.logits.shape == (batch, 10)
    assert torch.equal(out.original, images.reshape(batch, -1).float() / 255)
    for t in (out.layer1, out.layer2, out.layer3, out.logits):  # each ends in a ReLU
        assert (t >= 0).all()


def test_layers_compose_as_specified(fresh_torch_seed):
    m = StudyCNN()
    x = torch.rand(3, 1, 28, 28)
    f = torch.nn.functional
    l1 = f.relu(f.max_pool2d(m.conv1(x), 2))
    l2 = f.relu(f.max_pool2d(m.conv2(l1), 2))
    l3 = f.relu(m.conv3(l2)).reshape(3, 64)
    out = m(x)
    torch.testing.assert_close(out.layer3, l3, rtol=0, atol=0)
    torch.testing.assert_close(out.logits, f.relu(m.fc(l3)), rtol=0, atol=0)
