"""FILM network options in one place (no TensorFlow import here).

``FilmConfig.published()`` is the configuration of the published FILM /
cryoTIGER SavedModels (34,436,667 parameters).  ``FilmConfig.small()`` is a
tiny network for fast tests.  Image sizes given to the network must be
multiples of ``FilmConfig.pad_multiple`` (64 for every model we read or write,
see ``PAD_MULTIPLE``); the callers pad and crop.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import List

from .. import InputError

#: Every FILM SavedModel (published or ours) is fed images whose height and
#: width are multiples of this; callers pad (pad//2 before, rest after).
PAD_MULTIPLE = 64
#: Name of the file, inside an exported SavedModel folder, that records our config.
CONFIG_FILE = "cryotiger_film.json"


@dataclass
class FilmConfig:
    """Hyper-parameters of the FILM network (names as in the FILM paper's gin files).

    pyramid_levels: image pyramid depth (2x2 average pooling between levels).
    fusion_pyramid_levels: levels used by the fusion decoder.
    specialized_levels: finest levels with their own flow estimator; coarser
        levels share one.
    sub_levels: depth of the cascaded feature extractor.
    flow_convs / flow_filters: 3x3 conv count and width of each flow estimator
        (entries 0..specialized_levels-1, then the shared one).
    filters: width of the first feature / fusion level (doubles per level).
    fusion_upsampling: 'nearest' (published): nearest-neighbour 2x upsampling
        then the 2x2 conv with TF 'same' padding (0 top/left, 1 bottom/right),
        which moves the coarse path up-left by half a pixel per decoder level;
        'centred': a 2x2 mean padded top/left goes before that conv, so that
        the pair is centred (models trained from scratch by cryotiger).
    symmetric_flow: False (published): the fusion warps image 0 by
        0.5 F(1->0) and image 1 by 0.5 F(0->1), estimated independently, so a
        common bias of the two (what the estimator outputs for identical
        images) moves both warped images the same way; True: both use
        +-0.25 (F(0->1) - F(1->0)), which is exactly 0 for identical images.
    average_symmetries: False (published); True: at inference the output is
        the mean of the network on (x0, x1), (x1, x0) and both rotated by 180
        degrees (rotated back), a geometric self-ensemble: the function is then
        exactly symmetric in its inputs and commutes with that rotation, so a
        shift or a preference for one input that the weights learned (a
        network trained briefly on low-dose tilts learns ~0.2-1 px) cancels.
        Four passes at inference; training runs one pass (``forward_once``).
    time_conditioning: False (published: the ``time`` input is ignored, every
        output is the midpoint t = 0.5); True (issue 13, models trained by
        ``cryotiger train --time-aware``): the fusion warps image 0 by
        t F(1->0) and image 1 by (1 - t) F(0->1) (symmetric flows: -t D and
        (1 - t) D with D = (F(0->1) - F(1->0)) / 2), and t is one more constant
        input channel of every fusion level; the model synthesises the image
        at any fraction t in (0, 1) of the gap ("time-aware").
    """
    pyramid_levels: int = 7
    fusion_pyramid_levels: int = 5
    specialized_levels: int = 3
    sub_levels: int = 4
    flow_convs: List[int] = field(default_factory=lambda: [3, 3, 3, 3])
    flow_filters: List[int] = field(default_factory=lambda: [32, 64, 128, 256])
    filters: int = 64
    fusion_upsampling: str = "nearest"
    symmetric_flow: bool = False
    average_symmetries: bool = False
    time_conditioning: bool = False

    @classmethod
    def published(cls) -> "FilmConfig":
        """The configuration of the published models (34,436,667 parameters)."""
        return cls()

    @classmethod
    def small(cls) -> "FilmConfig":
        """A tiny network (a few thousand parameters) for tests."""
        return cls(pyramid_levels=4, fusion_pyramid_levels=3, specialized_levels=1, sub_levels=2,
                   flow_convs=[1, 1], flow_filters=[8, 8], filters=4)

    def aligned(self) -> "FilmConfig":
        """The same network with the two alignment fixes of models trained from
        scratch (issue 10 item 2): centred fusion upsampling and symmetric flows."""
        from dataclasses import replace
        return replace(self, fusion_upsampling="centred", symmetric_flow=True, average_symmetries=True)

    def time_aware(self) -> "FilmConfig":
        """The same network conditioned on the time t of the output (issue 13;
        see ``time_conditioning``): one more fusion input channel per level."""
        from dataclasses import replace
        return replace(self, time_conditioning=True)

    @classmethod
    def named(cls, name: str) -> "FilmConfig":
        """The configuration called ``name``: 'published' or 'small'.

        Raises:
            InputError: for any other name.
        """
        if name == "published":
            return cls.published()
        if name == "small":
            return cls.small()
        raise InputError(f"unknown FILM configuration '{name}'; use 'published' or 'small'")

    # -- derived sizes -------------------------------------------------------------
    def feature_channels(self, level: int) -> int:
        """Channels of the cascaded feature at pyramid ``level`` (0 = full resolution)."""
        return sum(self.filters * 2 ** j for j in range(min(level + 1, self.sub_levels)))

    def fusion_channels(self, level: int) -> int:
        """Channels of the fusion input at ``level``: two warped (image+feature), two flows
        (and the time t when ``time_conditioning``)."""
        return 2 * (3 + self.feature_channels(level)) + 4 + (1 if self.time_conditioning else 0)

    def validate(self) -> "FilmConfig":
        """Check that the options describe a network that can be built.

        Checks the level counts against each other, one ``flow_convs`` /
        ``flow_filters`` entry per specialised level plus the shared one, the
        image-size multiple 2**(pyramid_levels-1) <= ``PAD_MULTIPLE`` and the
        ``fusion_upsampling`` name.

        Returns:
            self, so that ``FilmConfig(...).validate()`` can be chained.
        Raises:
            InputError: naming every problem found, in one message.
        """
        problems = []
        if self.pyramid_levels < 2:
            problems.append(f"pyramid_levels={self.pyramid_levels} (need >= 2)")
        if not 2 <= self.fusion_pyramid_levels <= self.pyramid_levels:
            problems.append(f"fusion_pyramid_levels={self.fusion_pyramid_levels} "
                            f"(need 2..pyramid_levels={self.pyramid_levels})")
        if not 1 <= self.specialized_levels < self.pyramid_levels:
            problems.append(f"specialized_levels={self.specialized_levels} (need 1..pyramid_levels-1)")
        if self.sub_levels < 1 or self.specialized_levels < self.sub_levels - 1:
            problems.append(f"sub_levels={self.sub_levels} (need 1..specialized_levels+1, so that "
                            "the shared flow estimator sees the same channel count at every level)")
        if len(self.flow_convs) != self.specialized_levels + 1 or \
                len(self.flow_filters) != self.specialized_levels + 1:
            problems.append(f"flow_convs={self.flow_convs}, flow_filters={self.flow_filters} "
                            f"(need specialized_levels+1 = {self.specialized_levels + 1} entries each)")
        if 2 ** (self.pyramid_levels - 1) > PAD_MULTIPLE:
            problems.append(f"pyramid_levels={self.pyramid_levels} needs images in multiples of "
                            f"{2 ** (self.pyramid_levels - 1)} (at most {PAD_MULTIPLE} supported)")
        if self.fusion_upsampling not in ("nearest", "centred"):
            problems.append(f"fusion_upsampling={self.fusion_upsampling!r} (use 'nearest' or 'centred')")
        if problems:
            raise InputError("invalid FILM configuration: " + "; ".join(problems))
        return self

    def to_json(self) -> dict:
        """The options as a JSON-ready dict (field name -> value)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "FilmConfig":
        """A validated configuration from a ``to_json`` dict.

        Unknown keys are ignored and missing ones take the published defaults,
        so files written by older or newer versions still load.

        Raises:
            InputError: from ``validate`` when the values do not describe a network.
            TypeError: when ``validate`` meets a value of the wrong type (types
                are not checked otherwise, e.g. '7' for pyramid_levels).
        """
        known = {k: data[k] for k in cls().to_json() if k in data}
        return cls(**known).validate()

    def save(self, path: str) -> None:
        """Write ``to_json()`` to the JSON file ``path`` (overwritten; OSError passes through)."""
        with open(path, "w") as f:
            json.dump(self.to_json(), f, indent=1)

    @classmethod
    def load(cls, path: str) -> "FilmConfig":
        """Read a configuration saved by ``save`` (see ``from_json``).

        Raises:
            OSError: when ``path`` cannot be read.
            json.JSONDecodeError: when it is not JSON.
            InputError: when the values do not describe a network (``validate``).
        """
        with open(path) as f:
            return cls.from_json(json.load(f))

    def describe(self) -> str:
        """One line for logs and reports: 'published', 'small' or 'custom', then
        ' (aligned)' and/or ' (time-aware)' where those options are on, then the
        options as JSON."""
        from dataclasses import replace
        plain = replace(self, fusion_upsampling="nearest", symmetric_flow=False, average_symmetries=False,
                        time_conditioning=False)
        if plain == FilmConfig.published():
            name = "published"
        elif plain == FilmConfig.small():
            name = "small"
        else:
            name = "custom"
        if (self.fusion_upsampling, self.symmetric_flow, self.average_symmetries) != \
                (plain.fusion_upsampling, plain.symmetric_flow, plain.average_symmetries):
            name += " (aligned)"
        if self.time_conditioning:
            name += " (time-aware)"
        return f"{name} " + json.dumps(self.to_json())
