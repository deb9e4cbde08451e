// Shared by every qsn kernel. The same source compiles three ways:
//   * NVRTC (CuPy RawModule) for the GPU: __CUDACC__ is defined;
//   * g++ for the host emulation used by the CPU tests (kernels/runner.py HostRunner): each "thread"
//     of a launch runs in turn in a plain loop, so the kernels' arithmetic, RNG, refractoriness and
//     output formats are checked against the JAX path on machines without a GPU;
//   * g++ -O3 with QSN_NATIVE=1 for the native CPU backend, whose launch layers (kernels/cpu/) run
//     the same step over blocks of neurons, threaded and vectorised.
// Only the intrinsics and warp-level helpers below differ; the neuron arithmetic is one text.

#ifndef QSN_NATIVE
#define QSN_NATIVE 0
#endif
#ifdef __CUDACC__
#define QSN_UNROLL _Pragma("unroll")  // unroll the next loop fully (its trip count is a compile-time constant)
#define QSN_DEVICE __device__ __forceinline__
// 256 threads per block, at least 4 blocks per SM: ptxas may use up to 64 registers per thread (with
// no minimum it capped some variants at 40 and spilled)
#define QSN_KERNEL extern "C" __global__ void __launch_bounds__(256, 4)
// One thread per item; the host emulation turns this into a loop over all items.
#define QSN_FOR_EACH_THREAD(i, total) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x, qsn_once_ = 1; qsn_once_; qsn_once_ = 0)
typedef unsigned long long qsn_u64;
// Static analysis builds (kernels/ptx.py, -DQSN_ANALYSIS=1) tag basic blocks in the PTX so that
// per-step costs can weight conditional blocks by how often they run; other builds see nothing.
#if defined(QSN_ANALYSIS) && QSN_ANALYSIS
#define QSN_MARK(name) asm volatile("// qsn-block " #name ";")
#else
#define QSN_MARK(name)
#endif
#define QSN_FAST_SIN(x) __sinf(x)
#define QSN_FAST_COS(x) __cosf(x)
#define QSN_LOG(x) logf(x)
#define QSN_RSQRT(x) rsqrtf(x)
// cos(w dt) where w dt < 0.25: two SFU operations (rsqrt gives w) issue fewer instructions than a series
#define QSN_SMALL_COS(w2, t2, dt) __cosf((w2) * rsqrtf(fmaxf((w2), 1e-30f)) * (dt))
#if QSN_PRECISE
#define QSN_SIN(x) sinf(x)
#define QSN_COS(x) cosf(x)
#define QSN_RSQRT_EXACT(x) (1.0f / sqrtf(x))
#else
#define QSN_SIN(x) __sinf(x)
#define QSN_COS(x) __cosf(x)
#define QSN_RSQRT_EXACT(x) rsqrtf(x)
#endif
#else
#include <math.h>
#include <stdint.h>
#define QSN_UNROLL _Pragma("GCC unroll 64")  // g++ ignores CUDA's plain "#pragma unroll"
#define QSN_DEVICE static inline
#define QSN_KERNEL extern "C" void
#define QSN_FOR_EACH_THREAD(i, total) for (long long i = 0; i < (long long)(total); ++i)
#define QSN_MARK(name)
typedef unsigned long long qsn_u64;
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((uint64_t)a * b) >> 32); }
#if QSN_NATIVE
#undef QSN_DEVICE  // the sweep vectorises only what is inlined into it: the stochastic steps exceed g++'s limits
#define QSN_DEVICE static inline __attribute__((always_inline))
// The native backend (kernels/cpu/): g++ -O3 for this CPU's vector ISA. Fast builds replace the SFU
// intrinsics by polynomials that vectorise (libm's sinf/cosf are calls the vectoriser cannot widen):
// sine and cosine reduced by k pi/2 in two parts (Cody and Waite), then the degree-7/8 minimax
// polynomials on [-pi/4, pi/4] of Cephes' sinf/cosf; within 2 ulp of libm for |x| < 1e4.
QSN_DEVICE float qsn_poly_sin(float r, float z) {
    return fmaf(r * z, fmaf(z, fmaf(z, -1.9515295891e-4f, 8.3321608736e-3f), -1.6666654611e-1f), r);
}
QSN_DEVICE float qsn_poly_cos(float z) {
    return fmaf(z * z, fmaf(z, fmaf(z, 2.443315711809948e-5f, -1.388731625493765e-3f), 4.166664568298827e-2f),
                fmaf(-0.5f, z, 1.0f));
}
QSN_DEVICE float qsn_sin_cpu(float x) {
    const float k = rintf(x * 0.63661977236758134f);
    const float r = fmaf(k, 4.371139000186243e-8f, fmaf(k, -1.57079637050628662f, x)), z = r * r;
    const int q = (int)k;
    const float v = (q & 1) ? qsn_poly_cos(z) : qsn_poly_sin(r, z);
    return (q & 2) ? -v : v;
}
QSN_DEVICE float qsn_cos_cpu(float x) {
    const float k = rintf(x * 0.63661977236758134f);
    const float r = fmaf(k, 4.371139000186243e-8f, fmaf(k, -1.57079637050628662f, x)), z = r * r;
    const int q = (int)k;
    const float v = (q & 1) ? qsn_poly_sin(r, z) : qsn_poly_cos(z);
    return ((q + 1) & 2) ? -v : v;
}
// ln x for normal x > 0: x = m 2^e with m in [sqrt(1/2), sqrt(2)), then Cephes' logf polynomial in m - 1
// and e ln 2 in two parts; bit operations instead of frexpf so that it vectorises.
QSN_DEVICE float qsn_log_cpu(float x) {
    unsigned bits;
    __builtin_memcpy(&bits, &x, 4);
    int e = (int)((bits >> 23) & 0xffu) - 127;
    bits = (bits & 0x007fffffu) | 0x3f800000u;  // m in [1, 2)
    float m;
    __builtin_memcpy(&m, &bits, 4);
    const bool big = m > 1.41421356237f;
    m = big ? 0.5f * m : m;
    e += big ? 1 : 0;
    const float f = m - 1.0f, z = f * f, fe = (float)e;
    float y = fmaf(fmaf(fmaf(fmaf(fmaf(fmaf(fmaf(fmaf(7.0376836292e-2f, f, -1.1514610310e-1f), f, 1.1676998740e-1f), f,
        -1.2420140846e-1f), f, 1.4249322787e-1f), f, -1.6668057665e-1f), f, 2.0000714765e-1f), f, -2.4999993993e-1f),
        f, 3.3333331174e-1f) * f * z;
    y = fmaf(-2.12194440e-4f, fe, y);
    y = fmaf(-0.5f, z, y);
    return fmaf(0.693359375f, fe, f + y);
}
#define QSN_FAST_SIN(x) qsn_sin_cpu(x)
#define QSN_FAST_COS(x) qsn_cos_cpu(x)
// cos(w dt) where w dt < 0.25: the series to theta^6 (error < theta^8/8! < 4e-10), with no sqrt
#define QSN_SMALL_COS(w2, t2, dt) fmaf((t2), fmaf((t2), fmaf((t2), -1.0f / 720.0f, 1.0f / 24.0f), -0.5f), 1.0f)
#define QSN_RSQRT(x) (1.0f / sqrtf(x))
#if QSN_PRECISE
#define QSN_SIN(x) sinf(x)
#define QSN_COS(x) cosf(x)
#define QSN_LOG(x) logf(x)
#else
#define QSN_SIN(x) qsn_sin_cpu(x)
#define QSN_COS(x) qsn_cos_cpu(x)
#define QSN_LOG(x) qsn_log_cpu(x)
#endif
#define QSN_RSQRT_EXACT(x) (1.0f / sqrtf(x))
#else  // the host emulation of the CUDA launch, for tests
#define __restrict__
// SFU intrinsics have no host twin: the emulation uses libm (it checks logic, not their precision).
#define QSN_FAST_SIN(x) sinf(x)
#define QSN_FAST_COS(x) cosf(x)
#define QSN_SMALL_COS(w2, t2, dt) cosf(sqrtf(w2) * (dt))
#define QSN_LOG(x) logf(x)
#define QSN_RSQRT(x) (1.0f / sqrtf(x))
#define QSN_SIN(x) sinf(x)
#define QSN_COS(x) cosf(x)
#define QSN_RSQRT_EXACT(x) (1.0f / sqrtf(x))
#endif
#endif

// ---------------------------------------------------------------------------------------------
// Philox4x32-10 (Salmon et al., SC'11). qsn/philox.py is the JAX twin; both pass Random123's
// known-answer vectors.
struct qsn_u32x4 { unsigned x, y, z, w; };

QSN_DEVICE qsn_u32x4 qsn_philox(unsigned c0, unsigned c1, unsigned c2, unsigned c3, unsigned k0, unsigned k1) {
QSN_UNROLL
    for (int r = 0; r < 10; ++r) {
        if (r) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
        const unsigned hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        const unsigned hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        const unsigned n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
    }
    qsn_u32x4 out = {c0, c1, c2, c3};
    return out;
}

// [0, 1) from the top 24 bits: exact in float32 (qsn.philox.uniform24).
QSN_DEVICE float qsn_uniform24(unsigned word) { return (float)(word >> 8) * 5.9604644775390625e-08f; }

// ---------------------------------------------------------------------------------------------
// Warp-level outputs. On the GPU every lane of a warp must reach these together (the callers keep
// padding lanes alive for that). On the host the lanes run one after another.

// Set bit `lane` of words[w] where `bit`; one store per warp.
QSN_DEVICE void qsn_pack_bit(unsigned* __restrict__ words, long long w, long long i, bool bit) {
#ifdef __CUDACC__
    const unsigned ballot = __ballot_sync(0xffffffffu, bit);
    if ((threadIdx.x & 31) == 0) words[w] = ballot;
#else
    if (bit) words[w] |= 1u << (i & 31);
#endif
}

// Append (step, neuron) for every lane with `bit`; one atomic per warp (warp-aggregated). Slots at
// or past `capacity` are counted but not written: the caller compares the count with the capacity.
QSN_DEVICE void qsn_emit_event(qsn_u64* __restrict__ counter, int* __restrict__ ev_step, int* __restrict__ ev_neuron,
                               qsn_u64 capacity, int step, int neuron, bool bit) {
#ifdef __CUDACC__
    const unsigned ballot = __ballot_sync(0xffffffffu, bit);
    if (ballot == 0u) return;
    const int lane = threadIdx.x & 31;
    const int leader = __ffs(ballot) - 1;
    qsn_u64 base = 0;
    if (lane == leader) base = atomicAdd(counter, (qsn_u64)__popc(ballot));
    base = __shfl_sync(0xffffffffu, base, leader);
    const qsn_u64 slot = base + (qsn_u64)__popc(ballot & ((1u << lane) - 1u));
#else
    if (!bit) return;
    const qsn_u64 slot = (*counter)++;
#endif
    if (bit && slot < capacity) { ev_step[slot] = step; ev_neuron[slot] = neuron; }
}

// Float add into memory that other threads may update at the same time (the host runs lanes in turn).
QSN_DEVICE void qsn_atomic_add(float* __restrict__ where, float value) {
#ifdef __CUDACC__
    atomicAdd(where, value);
#else
    *where += value;
#endif
}
