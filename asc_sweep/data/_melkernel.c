/* The CPU log-mel front end's power, mel and dB stages in one pass over the spectrum.
 *
 * `power_mel` turns rfft's output, complex64 (clips, frames, bins), into the power mel
 * spectrogram, float32 (clips, mels, frames), or its dB: for a block of BLOCK frames it
 * writes |z|^2 = re^2 + im^2 of the bins any filter covers, transposed to (bin, frame), into
 * a buffer that stays in the L1/L2 cache, then takes each filter's dot product over just its
 * own bins (about 1,000 non-zero weights of 65,664 at 128 mels and n_fft 1024), a vector of
 * BLOCK frames at a time, (optionally) its dB, and the row written out. Torch ops cannot do
 * this: they write the power spectrum out and read it back, and a dense or banded product
 * multiplies mostly zeros.
 *
 * `window_frames` fills the FFT's input for a pass: each frame's samples, read from the clip
 * or from a short padded copy of one of its ends, times the window, for all the pass's frames
 * in one call and one parallel region (three torch products and their slicing cost more in
 * Python and thread start-up than the multiplications themselves on short clips).
 *
 * Built by setup.py as an optional extension; asc_sweep.data.features falls back to torch
 * ops (same result to float32 rounding) when it is absent. The power tiles have AVX-512 and
 * AVX2 forms on x86-64, chosen at run time; with GCC the rest is also compiled for x86-64-v3
 * and v4 and chosen at load time. The caller (features.py) checks shapes, dtypes and
 * contiguity; this file trusts them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 32 /* frames per block: the vector length of the dot products (16 * k) */

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && __GNUC__ >= 11
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLONES
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_AVX2_PATH 1
#include <immintrin.h>

/* |z|^2 of 8 frames x 8 bins, written transposed: dst[bin * BLOCK + frame]. `z` points at
 * the first frame's first bin (interleaved re, im), `stride` floats apart frame to frame. */
__attribute__((target("avx2"))) static void power_tile_avx2(const float *z, Py_ssize_t stride,
                                                            float *dst)
{
    __m256 r[8];
    for (int f = 0; f < 8; f++) {
        __m256 a = _mm256_loadu_ps(z + f * stride);
        __m256 b = _mm256_loadu_ps(z + f * stride + 8);
        /* Squares summed in pairs within each 128-bit half: bins 0 1 4 5 | 2 3 6 7. */
        r[f] = _mm256_hadd_ps(_mm256_mul_ps(a, a), _mm256_mul_ps(b, b));
    }
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    /* Column j of the 8 x 8 block holds element j of every frame's row. */
    _mm256_storeu_ps(dst + 0 * BLOCK, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + 1 * BLOCK, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 4 * BLOCK, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 5 * BLOCK, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 2 * BLOCK, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 3 * BLOCK, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * BLOCK, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * BLOCK, _mm256_permute2f128_ps(u3, u7, 0x31));
}

/* The same for 16 frames x 8 bins with AVX-512 (half the shuffles per value): squares of
 * two frames summed in pairs by one shuffle each, which leaves 2 bins x 2 frames per 128-bit
 * lane; then one two-source permute per group of 4 bins and 4 frames, and two 128-bit block
 * shuffles, put each bin's 16 frames in one register. */
__attribute__((target("avx512f"))) static void power_tile_avx512(const float *z, Py_ssize_t stride,
                                                                float *dst)
{
    /* Element 4 * bin + frame (4 bins, 4 frames) of a group, in the pair of registers of
     * its 4 frames: bins 0-3, then bins 4-7. */
    static const int32_t low_bins[16] = {0, 2, 16, 18, 1, 3, 17, 19, 4, 6, 20, 22, 5, 7, 21, 23};
    static const int32_t high_bins[16] = {8, 10, 24, 26, 9, 11, 25, 27,
                                          12, 14, 28, 30, 13, 15, 29, 31};
    const __m512i lo_idx = _mm512_loadu_si512(low_bins), hi_idx = _mm512_loadu_si512(high_bins);
    __m512 pairs[8], low[4], high[4];
    for (int i = 0; i < 8; i++) {
        __m512 a = _mm512_loadu_ps(z + 2 * i * stride);
        __m512 b = _mm512_loadu_ps(z + (2 * i + 1) * stride);
        a = _mm512_mul_ps(a, a);
        b = _mm512_mul_ps(b, b);
        /* Per 128-bit lane l: bins 2l, 2l+1 of frame 2i, then of frame 2i+1. */
        pairs[i] = _mm512_add_ps(_mm512_shuffle_ps(a, b, 0x88), _mm512_shuffle_ps(a, b, 0xDD));
    }
    for (int j = 0; j < 4; j++) { /* frames 4j .. 4j+3 */
        low[j] = _mm512_permutex2var_ps(pairs[2 * j], lo_idx, pairs[2 * j + 1]);
        high[j] = _mm512_permutex2var_ps(pairs[2 * j], hi_idx, pairs[2 * j + 1]);
    }
    for (int h = 0; h < 2; h++) {
        const __m512 *g = h ? high : low;
        float *d = dst + 4 * h * BLOCK;
        const __m512 c0 = _mm512_shuffle_f32x4(g[0], g[1], 0x44);
        const __m512 c1 = _mm512_shuffle_f32x4(g[0], g[1], 0xEE);
        const __m512 d0 = _mm512_shuffle_f32x4(g[2], g[3], 0x44);
        const __m512 d1 = _mm512_shuffle_f32x4(g[2], g[3], 0xEE);
        _mm512_storeu_ps(d + 0 * BLOCK, _mm512_shuffle_f32x4(c0, d0, 0x88));
        _mm512_storeu_ps(d + 1 * BLOCK, _mm512_shuffle_f32x4(c0, d0, 0xDD));
        _mm512_storeu_ps(d + 2 * BLOCK, _mm512_shuffle_f32x4(c1, d1, 0x88));
        _mm512_storeu_ps(d + 3 * BLOCK, _mm512_shuffle_f32x4(c1, d1, 0xDD));
    }
}

/* Tiles of `width` frames x 8 bins from frame `from` on, while whole tiles fit in `count`
 * frames; returns the first frame left. */
static int tiles(void (*tile)(const float *, Py_ssize_t, float *), int width, const float *z,
                 Py_ssize_t stride, Py_ssize_t bins, int from, int count, float *power)
{
    int f = from;
    for (; f + width <= count; f += width)
        for (Py_ssize_t k = 0; k < bins; k += 8)
            tile(z + f * stride + 2 * k, stride, power + k * BLOCK + f);
    return f;
}
#endif

typedef struct {
    const float *spec;   /* interleaved re, im: (clips, frames, bins) */
    Py_ssize_t clips, frames, bins;
    int lo, hi;          /* the bins any filter covers: [lo, hi) */
    const float *weights;
    const int *starts, *lengths, *offsets; /* per mel: first bin, bin count, offset in weights */
    int mels;
    float *out;          /* (clips, mels, frames) with the strides below, frames contiguous */
    Py_ssize_t out_clip_stride, out_mel_stride;
    int simd;            /* the power tiles the CPU runs: 2 AVX-512, 1 AVX2, 0 none */
    int db;              /* write multiplier * log10(max(power, amin)) instead of power */
    float amin, multiplier;
} Job;

/* multiplier * log10(max(x, amin)) for finite x (NaN and infinities pass through), written
 * so that compilers vectorise it, with no division: x = m * 2^e with m in [sqrt(1/2),
 * sqrt(2)), then ln m = f q(f), f = m - 1, q a degree-7 polynomial fitted to ln(1 + f) / f
 * on Chebyshev nodes of that interval (ln m within 9e-8, 4e-7 dB, of float64's). */
static inline float to_db(float x, float amin, float multiplier)
{
    union {
        float f;
        int32_t i;
    } y, m;
    y.f = x < amin ? amin : x; /* NaN stays NaN, as in torch.clamp */
    const int32_t e = (y.i - 0x3f3504f3) >> 23; /* sqrt(1/2)'s bits: m starts there */
    m.i = y.i - (int32_t)((uint32_t)e << 23);
    const float f = m.f - 1.0f;
    float q = -1.013417889e-01f;
    q = q * f + 1.623438145e-01f;
    q = q * f - 1.724705072e-01f;
    q = q * f + 1.989854493e-01f;
    q = q * f - 2.497006742e-01f;
    q = q * f + 3.333511467e-01f;
    q = q * f - 5.000036317e-01f;
    q = q * f + 9.999999425e-01f;
    const float ln = (float)e * 0.693147180559945f + f * q;
    const float db = multiplier * 0.434294481903252f * ln; /* log10 x = ln x / ln 10 */
    return y.f <= 3.402823466e38f ? db : x * multiplier;
}

/* Frames `first` .. `first + count - 1` of all clips' frames end to end (a block may span
 * clips: a clip's few edge frames do not cost a whole block each). */
CLONES
static void run_block(const Job *job, Py_ssize_t first, int count, float *power, float *mel)
{
    const Py_ssize_t n = job->hi - job->lo;
    const float *z = job->spec + 2 * (first * job->bins + job->lo);
    /* Power, transposed to (bin, frame): tiles of 16 or 8 frames x 8 bins with AVX-512 or
     * AVX2 where the CPU has them; the rest (and everything elsewhere) in plain C, in tiles
     * of 16 bins so that reads and writes both stay within a few cache lines. */
    int done_frames = 0;
    Py_ssize_t done_bins = 0;
#ifdef HAVE_AVX2_PATH
    if (job->simd >= 1) {
        done_bins = n - n % 8;
        const Py_ssize_t stride = 2 * job->bins;
        if (job->simd >= 2)
            done_frames = tiles(power_tile_avx512, 16, z, stride, done_bins, 0, count, power);
        done_frames = tiles(power_tile_avx2, 8, z, stride, done_bins, done_frames, count, power);
    }
#endif
    /* What the tiles left: the last few bins of their frames, then the frames after them. */
    for (int f = 0; f < done_frames; f++) {
        const float *zf = z + 2 * f * job->bins;
        for (Py_ssize_t k = done_bins; k < n; k++)
            power[k * BLOCK + f] = zf[2 * k] * zf[2 * k] + zf[2 * k + 1] * zf[2 * k + 1];
    }
    for (Py_ssize_t k0 = 0; k0 < n && done_frames < count; k0 += 16) {
        const Py_ssize_t k1 = k0 + 16 < n ? k0 + 16 : n;
        for (int f = done_frames; f < count; f++) {
            const float *zf = z + 2 * f * job->bins;
            for (Py_ssize_t k = k0; k < k1; k++)
                power[k * BLOCK + f] = zf[2 * k] * zf[2 * k] + zf[2 * k + 1] * zf[2 * k + 1];
        }
    }
    /* Each filter's dot product over its own bins, BLOCK frames at a time, then its dB,
     * written straight into the output where the block lies within one clip, else into
     * `mel` (mels, BLOCK) to be cut clip by clip below. */
    const Py_ssize_t clip = first / job->frames, t0 = first % job->frames;
    const int direct = count == BLOCK && t0 + BLOCK <= job->frames;
    float *dest = job->out + clip * job->out_clip_stride + t0;
    const float amin = job->amin, multiplier = job->multiplier;
    for (int m = 0; m < job->mels; m++) {
        const float *w = job->weights + job->offsets[m];
        const float *p = power + (Py_ssize_t)(job->starts[m] - job->lo) * BLOCK;
        float row[BLOCK];
#ifdef __GNUC__ /* vector types keep the BLOCK sums in registers */
        typedef float vec16 __attribute__((vector_size(16 * sizeof(float))));
        vec16 acc[BLOCK / 16] = {{0}}, pj;
        for (int j = 0; j < job->lengths[m]; j++) {
            for (int h = 0; h < BLOCK / 16; h++) {
                memcpy(&pj, p + j * BLOCK + 16 * h, sizeof pj);
                acc[h] += w[j] * pj;
            }
        }
        memcpy(row, &acc, sizeof row);
#else
        for (int f = 0; f < BLOCK; f++)
            row[f] = 0.0f;
        for (int j = 0; j < job->lengths[m]; j++)
            for (int f = 0; f < BLOCK; f++)
                row[f] += w[j] * p[j * BLOCK + f];
#endif
        if (job->db) {
#pragma omp simd
            for (int f = 0; f < BLOCK; f++)
                row[f] = to_db(row[f], amin, multiplier);
        }
        memcpy(direct ? dest + m * job->out_mel_stride : mel + m * BLOCK, row, sizeof row);
    }
    if (direct)
        return;
    for (int f = 0; f < count;) { /* clip by clip */
        const Py_ssize_t c = (first + f) / job->frames, t = (first + f) % job->frames;
        const int run = (int)(job->frames - t < count - f ? job->frames - t : count - f);
        float *d = job->out + c * job->out_clip_stride + t;
        for (int m = 0; m < job->mels; m++)
            memcpy(d + m * job->out_mel_stride, mel + m * BLOCK + f, sizeof(float) * run);
        f += run;
    }
}

/* Returns 0, or -1 when a buffer could not be allocated. */
static int run(const Job *job, int threads)
{
    const Py_ssize_t frames = job->clips * job->frames;
    const Py_ssize_t total = (frames + BLOCK - 1) / BLOCK;
    const size_t size = sizeof(float) * (size_t)(job->hi - job->lo + 1) * BLOCK;
    const size_t mel_size = sizeof(float) * (size_t)job->mels * BLOCK;
    int failed = 0;
#pragma omp parallel num_threads(threads) reduction(| : failed)
    {
        /* Zeroed: lanes past a clip's last frame are multiplied but never written out. */
        float *power = (float *)calloc(1, size);
        float *mel = (float *)calloc(1, mel_size + sizeof(float));
        if (!power || !mel) {
            failed = 1;
        }
#pragma omp for schedule(static)
        for (Py_ssize_t i = 0; i < total; i++) {
            const Py_ssize_t left = frames - i * BLOCK;
            if (power && mel)
                run_block(job, i * BLOCK, left < BLOCK ? (int)left : BLOCK, power, mel);
        }
        free(power);
        free(mel);
    }
    return failed ? -1 : 0;
}

/* Windowing: frame t of clip c is n_fft samples from one of up to three parts (the clip's
 * head and tail read short padded copies of its ends, the frames inside it the clip itself),
 * times the window, written to dst[(c - first) * dst_stride + (t - a) * n_fft]. */
typedef struct {
    const float *window;
    float *dst;
    Py_ssize_t dst_stride, n_fft, hop, first, clips, a, count;
    const float *src[3];    /* each part's first frame of clip 0 */
    Py_ssize_t stride[3];   /* clip to clip, in floats */
    Py_ssize_t lo[3];       /* each part's first frame (lo[0] = 0, ascending) */
} Frames;

CLONES
static void window_frame(const float *restrict src, const float *restrict window,
                         float *restrict dst, Py_ssize_t n)
{
    for (Py_ssize_t j = 0; j < n; j++)
        dst[j] = src[j] * window[j];
}

static void window_run(const Frames *job, int threads)
{
    const Py_ssize_t total = job->clips * job->count;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (Py_ssize_t i = 0; i < total; i++) {
        const Py_ssize_t c = job->first + i / job->count, t = job->a + i % job->count;
        const int part = t >= job->lo[2] ? 2 : t >= job->lo[1] ? 1 : 0;
        const float *src = job->src[part] + c * job->stride[part] + (t - job->lo[part]) * job->hop;
        window_frame(src, job->window,
                     job->dst + (i / job->count) * job->dst_stride + (i % job->count) * job->n_fft,
                     job->n_fft);
    }
}

static PyObject *window_frames(PyObject *self, PyObject *args)
{
    Py_ssize_t window, dst, src[3];
    Frames job;
    int threads;
    (void)self;
    if (!PyArg_ParseTuple(args, "nnnnnnnnnnnnnnnnni", &dst, &job.dst_stride, &job.first,
                          &job.clips, &job.a, &job.count, &window, &job.n_fft, &job.hop,
                          &src[0], &job.stride[0], &job.lo[1], &src[1], &job.stride[1],
                          &job.lo[2], &src[2], &job.stride[2], &threads))
        return NULL;
    if (job.first < 0 || job.clips < 0 || job.a < 0 || job.count < 0 || job.n_fft < 1 ||
        job.hop < 1 || threads < 1 || job.dst_stride < job.count * job.n_fft || job.lo[1] < 0 ||
        job.lo[2] < job.lo[1]) {
        PyErr_SetString(PyExc_ValueError, "window_frames: sizes out of range");
        return NULL;
    }
    job.lo[0] = 0;
    job.window = (const float *)window;
    job.dst = (float *)dst;
    for (int k = 0; k < 3; k++)
        job.src[k] = (const float *)src[k];
    Py_BEGIN_ALLOW_THREADS
    window_run(&job, threads);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static int cpu_simd(void)
{
#ifdef HAVE_AVX2_PATH
    return __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") ? 1 : 0;
#else
    return 0;
#endif
}

static PyObject *power_mel(PyObject *self, PyObject *args)
{
    Py_ssize_t spec, weights, starts, lengths, offsets, out;
    Job job;
    int threads, status;
    float amin = 0.0f, multiplier = 0.0f;
    int simd = -1;
    (void)self;
    if (!PyArg_ParseTuple(args, "nnnniinnnninnni|ffi", &spec, &job.clips, &job.frames,
                          &job.bins, &job.lo, &job.hi, &weights, &starts, &lengths, &offsets,
                          &job.mels, &out, &job.out_clip_stride, &job.out_mel_stride, &threads,
                          &amin, &multiplier, &simd))
        return NULL;
    if (job.clips < 0 || job.frames < 0 || job.bins < 1 || job.lo < 0 || job.hi < job.lo ||
        job.hi > job.bins || job.mels < 0 || threads < 1 || job.out_mel_stride < job.frames ||
        job.out_clip_stride < job.mels * job.out_mel_stride) {
        PyErr_SetString(PyExc_ValueError, "power_mel: sizes out of range");
        return NULL;
    }
    job.spec = (const float *)spec;
    job.weights = (const float *)weights;
    job.starts = (const int *)starts;
    job.lengths = (const int *)lengths;
    job.offsets = (const int *)offsets;
    job.out = (float *)out;
    job.db = multiplier != 0.0f;
    job.amin = amin;
    job.multiplier = multiplier;
    if (job.db && !(amin > 0.0f)) {
        PyErr_SetString(PyExc_ValueError, "power_mel: amin must be > 0");
        return NULL;
    }
    job.simd = cpu_simd();
    if (simd >= 0 && simd < job.simd)
        job.simd = simd;
    Py_BEGIN_ALLOW_THREADS
    status = run(&job, threads);
    Py_END_ALLOW_THREADS
    if (status)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *simd(PyObject *self, PyObject *args)
{
    (void)self;
    (void)args;
    return PyLong_FromLong(cpu_simd());
}

static PyMethodDef methods[] = {
    {"power_mel", power_mel, METH_VARARGS,
     "power_mel(spec, clips, frames, bins, lo, hi, weights, starts, lengths, offsets, mels, "
     "out, out_clip_stride, out_mel_stride, threads[, amin, multiplier, simd]): buffer "
     "addresses and sizes; with multiplier (non-zero), multiplier * log10(max(power, amin)) "
     "is written instead of the power; simd caps the instruction sets used (0 none, 1 AVX2, "
     "2 AVX-512; -1 what the CPU has). See asc_sweep.data.features."},
    {"window_frames", window_frames, METH_VARARGS,
     "window_frames(dst, dst_clip_stride, first_clip, clips, first_frame, frames, window, "
     "n_fft, hop, head, head_stride, inside_lo, inside, inside_stride, tail_lo, tail, "
     "tail_stride, threads): frames first_frame .. first_frame + frames - 1 of clips "
     "first_clip .. first_clip + clips - 1, each n_fft samples from its part (the head's frames "
     "from 0, the inside's from inside_lo, the tail's from tail_lo; each part's address is its "
     "first frame's of clip 0, hop floats apart frame to frame), times the window, into dst "
     "(clips, frames, n_fft) with the given clip stride."},
    {"simd", simd, METH_NOARGS,
     "simd(): the power tiles this CPU runs: 2 AVX-512, 1 AVX2, 0 plain C."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_melkernel", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__melkernel(void) { return PyModule_Create(&module); }
