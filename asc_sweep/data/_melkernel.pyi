# The compiled power + mel kernel (_melkernel.c), built by setup.py where a C compiler is.

def power_mel(
    spec: int,
    clips: int,
    frames: int,
    bins: int,
    lo: int,
    hi: int,
    weights: int,
    starts: int,
    lengths: int,
    offsets: int,
    mels: int,
    out: int,
    out_clip_stride: int,
    out_mel_stride: int,
    threads: int,
    amin: float = ...,
    multiplier: float = ...,
    simd: int = ...,
    /,
) -> None: ...
def simd() -> int: ...
