// The native Metropolis sweep of qsn.qubo.anneal / parallel_tempering (backend="native"). The chain is
// the one qsn/qubo/native.py documents: Ising spins s = 2x - 1, local fields f = h + J s carried from
// flip to flip, spin i flips iff beta dE_i < -log u with dE_i = -2 s_i f_i, the sweeps of each block of
// K sweeps visit the spins in one random permutation, and every random number is a counter hash of (seed,
// sweep, replica, spin), so results depend on neither the thread count nor how replicas are grouped.
//
// Layout (docs in qsn/qubo/native.py):
//   * sparse: neighbour lists (CSR). Replicas go in groups of G lanes (8 or 16) with spin i of the group's
//     replicas contiguous (S[i * G + lane]): after the sweep's thresholds (one pass), a visit decides all
//     lanes with one vector operation and adds w_ij (s_new - s_old) to the neighbours' field rows. Below 8
//     replicas each replica runs alone (G = 1): the sweep's thresholds in one vector pass, then the visits
//     one by one, branch-free.
//   * dense: each replica has its spins and fields contiguous; the order visits whole blocks of 64
//     consecutive spins. Within a block the fields are corrected by the block's flips so far (through the
//     block's own couplings), and after it each replica adds the rows of J of its flips (2 s_new J[i, :])
//     to its fields in one vector pass; replicas go in batches that take the block in turn.
// OpenMP threads take whole groups. Parallel tempering runs the sweeps between exchange rounds as one
// parallel segment, then exchanges temperatures (not states) between replicas on one thread.
#include "common.cuh"
#pragma GCC diagnostic ignored "-Wpsabi"  // the ABI note on 128-byte vector arguments (inlined)
#include <stdlib.h>
#include <string.h>
#include <algorithm>
#include <new>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

typedef unsigned u32;
constexpr u32 GOLDEN = 0x9E3779B9u;

#define QSN_ALWAYS inline __attribute__((always_inline))
#define QSN_INLINE_LAMBDA __attribute__((always_inline))

// G lanes of float / uint32 / int / double as GCC vector types (one or more machine vectors); scalars
// combine with lanes by broadcasting.
template <int G>
struct Lanes {
    typedef float f __attribute__((vector_size(4 * G)));
    typedef u32 u __attribute__((vector_size(4 * G)));
    typedef int i __attribute__((vector_size(4 * G)));
    typedef double d __attribute__((vector_size(8 * G)));
};
template <class V>
QSN_ALWAYS V load(const void* p) { V v; memcpy(&v, p, sizeof v); return v; }
template <class V>
QSN_ALWAYS void store(void* p, const V& v) { memcpy(p, &v, sizeof v); }
// fmaf lane by lane: g++ makes one vector FMA of it.
template <class V>
QSN_ALWAYS V fma_lanes(const V a, const V b, const V c) {
    V r;
#pragma GCC unroll 64
    for (int l = 0; l < (int)(sizeof(V) / sizeof(a[0])); ++l) r[l] = fmaf(a[l], b[l], c[l]);
    return r;
}

QSN_ALWAYS u32 as_bits(const float x) { u32 b; memcpy(&b, &x, sizeof b); return b; }
QSN_ALWAYS float as_float(const u32 b) { float x; memcpy(&x, &b, sizeof x); return x; }

// The MurmurHash3 finaliser and the two-round counter hash of qsn.qubo.annealer._words (U: u32 or lanes).
template <class U>
QSN_ALWAYS U fmix32(U x) {
    x ^= x >> 16;
    x *= 0x85EBCA6Bu;
    x ^= x >> 13;
    x *= 0xC2B2AE35u;
    return x ^ (x >> 16);
}
QSN_ALWAYS u32 word(const u32 a, const u32 b, const u32 c) { return fmix32(fmix32(c * GOLDEN + a) ^ b); }

// -log u for u = ((w >> 8) + 1/2) 2^-24, as qsn.qubo.annealer._exponential: exponent and mantissa of u,
// log(1 + m) by a degree-8 polynomial (Horner, FMA), floored at 2.98e-8 so a zero-cost flip is accepted.
constexpr float LOG1P[9] = {0.0f, 0.9999942779541016f, -0.49983856081962585f, 0.33154863119125366f,
                            -0.23982615768909454f, 0.16582275927066803f, -0.0932520404458046f,
                            0.03484971448779106f, -0.006151470821350813f};
constexpr float LN2 = 0.6931471805599453f, FLOOR = 2.98e-8f, ULP24 = 5.9604644775390625e-08f;

QSN_ALWAYS float exponential(const u32 w) {
    const float u = ((float)(w >> 8) + 0.5f) * ULP24;
    u32 bits;
    memcpy(&bits, &u, sizeof bits);
    const float exponent = (float)(int)(bits >> 23) - 127.0f;
    const u32 mbits = (bits & 0x7FFFFFu) | 0x3F800000u;
    float m;
    memcpy(&m, &mbits, sizeof m);
    m -= 1.0f;
    float p = LOG1P[8];
#pragma GCC unroll 8
    for (int k = 7; k >= 1; --k) p = fmaf(p, m, LOG1P[k]);
    p = p * m;
    const float r = -fmaf(exponent, LN2, p);
    return r < FLOOR ? FLOOR : r;
}

// The same operations on G lanes (equal results lane by lane).
template <int G>
QSN_ALWAYS typename Lanes<G>::f exponential(const typename Lanes<G>::u w) {
    typedef typename Lanes<G>::f F;
    typedef typename Lanes<G>::u U;
    typedef typename Lanes<G>::i I;
    const F u = (__builtin_convertvector(w >> 8, F) + 0.5f) * ULP24;
    const U bits = (U)u;
    const F exponent = __builtin_convertvector((I)(bits >> 23), F) - 127.0f;
    const F m = (F)((bits & 0x7FFFFFu) | 0x3F800000u) - 1.0f;
    const F zero = {};
    F p = zero + LOG1P[8];
#pragma GCC unroll 8
    for (int k = 7; k >= 1; --k) p = fma_lanes(p, m, zero + LOG1P[k]);
    p = p * m;
    const F r = -fma_lanes(exponent, zero + LN2, p);
    return r < FLOOR ? zero + FLOOR : r;
}

// Key words of step tau (tau = 0: the initial state; tau = t + 1: sweep t).
struct Keys {
    u32 a, b, c, d;
    Keys(const u32 s0, const u32 s1, const u32 tau)
        : a(word(s0, s1, 4u * tau)), b(word(s0, s1, 4u * tau + 1u)), c(word(s0, s1, 4u * tau + 2u)),
          d(word(s0, s1, 4u * tau + 3u)) {}
};

// The visiting order of sweep t: the sweeps t0 = K floor(t / K), ..., t0 + K - 1 share the permutation drawn
// with the key word c of step t0 + 1: from the identity, for m = n-1, ..., 1 swap positions m and
// (word(c, s1, m) (m + 1)) >> 32 (Fisher-Yates). order[m] is the spin visited m-th.
void visiting_order(const int n, const u32 s0, const u32 s1, const int every, const int t, int* order) {
    const u32 c = Keys(s0, s1, (u32)(t / every * every) + 1u).c;
    for (int m = 0; m < n; ++m) order[m] = m;
    for (int m = n - 1; m > 0; --m) std::swap(order[m], order[(int)__umulhi(word(c, s1, (u32)m), (u32)m + 1u)]);
}

// The dense path's order of sweep t (same blocks of K sweeps, same key word c): blocks of DENSE_BLOCK
// consecutive spins, the blocks in a random order (from the identity, for k = nb-1, ..., 1 swap k and
// (word(c, s0, k) (k + 1)) >> 32), the spins of block b (from start_b) in a random order (for m = L_b-1, ..., 1
// swap local positions m and (word(c, s1, start_b + m) (m + 1)) >> 32). order[m] is the spin visited m-th.
constexpr int DENSE_BLOCK = 64;

void dense_order(const int n, const u32 s0, const u32 s1, const int every, const int t, int* order) {
    const u32 c = Keys(s0, s1, (u32)(t / every * every) + 1u).c;
    const int blocks = (n + DENSE_BLOCK - 1) / DENSE_BLOCK;
    std::vector<int> block(blocks);
    for (int k = 0; k < blocks; ++k) block[k] = k;
    for (int k = blocks - 1; k > 0; --k) std::swap(block[k], block[(int)__umulhi(word(c, s0, (u32)k), (u32)k + 1u)]);
    int at = 0;
    for (int k = 0; k < blocks; ++k) {
        const int start = block[k] * DENSE_BLOCK, size = std::min(DENSE_BLOCK, n - start);
        int* out = order + at;
        for (int m = 0; m < size; ++m) out[m] = start + m;
        for (int m = size - 1; m > 0; --m)
            std::swap(out[m], out[(int)__umulhi(word(c, s1, (u32)(start + m)), (u32)m + 1u)]);
        at += size;
    }
}

// Buffer aligned to a cache line (vector rows of 16 floats start on one).
template <class T>
struct Buffer {
    T* p = nullptr;
    explicit Buffer(size_t count) {
        size_t bytes = (count * sizeof(T) + 63) / 64 * 64;
        p = static_cast<T*>(aligned_alloc(64, bytes ? bytes : 64));
        if (!p) throw std::bad_alloc();
    }
    ~Buffer() { free(p); }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    T& operator[](size_t i) { return p[i]; }
};

struct Problem {
    int n, replicas, padded, sweeps, temps, chains, every;
    u32 seed0, seed1;
    const float* schedule;  // (sweeps,)
    const float* betas;     // (temps,)
    const signed char* init;  // (replicas, n) +-1, or null
    const float* h;         // (n,) Ising fields
    // sparse
    const long long* ptr;   // (n + 1,) neighbour lists nb[ptr[i] .. ptr[i + 1]) in increasing index
    const int* nb;          // neighbours
    const float* w;         // their couplings J
    int degree;             // > 0: every spin has this many neighbours (and ptr[i] = i degree)
    // dense
    const float* j;         // (n, n) couplings J, zero diagonal
    // state, shared by the segments of a run
    int* temp;              // (padded,) temperature index of each replica
    double* e;              // (padded,) carried Ising energy (no offset)
    double* best_e;         // (padded,) lowest carried energy at the end of a sweep
    double* group_best;     // (groups, sweeps) min of best_e over the group's replicas after each sweep
    float* s;               // spins: sparse (groups, n, G); dense (padded, n)
    float* best_s;          // the state that had best_e, same layout
    float* field;           // carried fields h + J s, the layout of s

    float beta(const int t, const int r) const { return schedule[t] * betas[temp[r]]; }
    float initial_spin(const Keys& k0, const u32 key, const int r, const int i) const {
        if (init) return (float)init[(long long)(r < replicas ? r : replicas - 1) * n + i];
        return (word(k0.a, key, (u32)i) >> 31) ? 1.0f : -1.0f;
    }
    // The order of sweep t into `order`, when t starts a block of K sweeps or a segment.
    void order_for(const int t, const int t0, int* order) const {
        if (t != t0 && t % every != 0) return;
        if (j) dense_order(n, seed0, seed1, every, t, order);
        else visiting_order(n, seed0, seed1, every, t, order);
    }
};

struct Scratch {
    std::vector<float> threshold, change, step;
    std::vector<int> order, flipped, flips;
    Scratch(const Problem& p, int batch)
        : threshold((size_t)p.n * batch), change(p.n), step(batch * 64), order(p.n), flipped(batch * 64),
          flips(batch) {}
};

// ------------------------------------------------------------------ sparse
// A sweep's energy change is summed in the same order by every path: the change of the m-th visit goes to
// accumulator m mod 2 (float64, in visit order), and the sweep adds their sum, even + odd.

// Start of a group of G lanes (G = 1: one replica): spins, fields f = h + J s (float32, FMA in list order,
// as every path), carried energy sum_i s_i (h_i + f_i) / 2 (float64); the best state is the start.
void sparse_start(const Problem& p, const int r0, const int G, float* S, float* F, float* B) {
    const int n = p.n;
    const Keys k0(p.seed0, p.seed1, 0u);
    for (int l = 0; l < G; ++l) {
        const u32 key = word(k0.b, p.seed1, (u32)(r0 + l));
        for (int i = 0; i < n; ++i) S[(long long)i * G + l] = p.initial_spin(k0, key, r0 + l, i);
    }
    memcpy(B, S, sizeof(float) * n * G);
    for (int l = 0; l < G; ++l) {
        double e = 0.0;
        for (int i = 0; i < n; ++i) {
            float f = p.h[i];
            for (long long k = p.ptr[i]; k < p.ptr[i + 1]; ++k) f = fmaf(p.w[k], S[(long long)p.nb[k] * G + l], f);
            F[(long long)i * G + l] = f;
            e += 0.5 * (double)S[(long long)i * G + l] * ((double)p.h[i] + (double)f);
        }
        p.e[r0 + l] = p.best_e[r0 + l] = e;
    }
}

// G replicas as vector lanes: every visit decides all lanes and updates the neighbours' rows (by zero in
// the lanes that keep their spin).
template <int G>
void sparse_group(const Problem& p, const int g, const int t0, const int t1, Scratch& sc) {
    typedef typename Lanes<G>::f V;
    typedef typename Lanes<G>::u U;
    typedef typename Lanes<G>::d D;
    const int n = p.n, r0 = g * G;
    float* S = p.s + (long long)g * n * G;
    float* F = p.field + (long long)g * n * G;
    float* B = p.best_s + (long long)g * n * G;
    if (t0 == 0) sparse_start(p, r0, G, S, F, B);
    D e, best;
    for (int l = 0; l < G; ++l) { e[l] = p.e[r0 + l]; best[l] = p.best_e[r0 + l]; }
    const int* order = sc.order.data();
    const long long* __restrict__ ptr = p.ptr;
    const int* __restrict__ nb = p.nb;
    const float* __restrict__ w = p.w;
    const V zero = {};
    for (int t = t0; t < t1; ++t) {
        const Keys k(p.seed0, p.seed1, (u32)t + 1u);
        p.order_for(t, t0, sc.order.data());
        U key;
        V beta;
        for (int l = 0; l < G; ++l) { key[l] = word(k.b, p.seed1, (u32)(r0 + l)); beta[l] = p.beta(t, r0 + l); }
        // The sweep's thresholds first, by visit (no dependence on the fields: they pipeline freely).
        float* __restrict__ thresholds = sc.threshold.data();
        for (int m = 0; m < n; ++m)
            store(thresholds + (long long)m * G, exponential<G>(fmix32(key ^ fmix32((u32)order[m] * GOLDEN + k.a))));
        const auto visit = [&](const int m, D& acc) QSN_INLINE_LAMBDA {
            const int i = order[m];
            float* si = S + (long long)i * G;
            const V s = load<V>(si), f = load<V>(F + (long long)i * G);
            const V de = -2.0f * s * f;
            const auto flip = beta * de < load<V>(thresholds + (long long)m * G);
            store(si, flip ? -s : s);
            acc += __builtin_convertvector(flip ? de : zero, D);
            const V delta = flip ? -2.0f * s : zero;  // s_new - s_old
            const long long q1 = ptr[i + 1];
            for (long long q = ptr[i]; q < q1; ++q) {
                float* fj = F + (long long)nb[q] * G;
                store(fj, fma_lanes(zero + w[q], delta, load<V>(fj)));
            }
        };
        D even = {}, odd = {};
        int m = 0;
        for (; m + 2 <= n; m += 2) {  // accumulator m mod 2, unrolled so that both stay in registers
            visit(m, even);
            visit(m + 1, odd);
        }
        if (m < n) visit(m, even);
        e += even + odd;
        bool any = false;
        typename Lanes<G>::i better;
        double low = 1e300;
        for (int l = 0; l < G; ++l) {
            better[l] = e[l] < best[l] ? -1 : 0;
            if (better[l]) best[l] = e[l];
            any |= better[l] != 0;
            if (r0 + l < p.replicas && best[l] < low) low = best[l];
        }
        if (any)
            for (long long i = 0; i < (long long)n * G; i += G)
                store(B + i, better ? load<V>(S + i) : load<V>(B + i));
        p.group_best[(long long)g * p.sweeps + t] = low;
    }
    for (int l = 0; l < G; ++l) { p.e[r0 + l] = e[l]; p.best_e[r0 + l] = best[l]; }
}

// The visits of one sweep of one replica, branch-free (flips are too random to predict: a kept spin keeps its
// sign and adds zeros); change[m] receives the energy change of the m-th visit. DEGREE > 0: every spin has
// DEGREE neighbours (the loop over them unrolled).
template <int DEGREE>
QSN_ALWAYS void visit_all(const int n, const float beta, const int* __restrict__ order, float* __restrict__ S,
                          float* __restrict__ F, const float* __restrict__ threshold, float* __restrict__ change,
                          const long long* __restrict__ ptr, const int* __restrict__ nb, const float* __restrict__ w) {
    for (int m = 0; m < n; ++m) {
        const int i = order[m];
        const float s = S[i];
        const float de = -2.0f * s * F[i];
        const u32 keep = (u32)(beta * de < threshold[i]) - 1u;  // 0 to flip, all ones to keep
        S[i] = as_float(as_bits(s) ^ (~keep & 0x80000000u));
        change[m] = as_float(as_bits(de) & ~keep);
        const float delta = as_float(as_bits(-2.0f * s) & ~keep);
        if (DEGREE > 0) {
            const long long base = (long long)i * DEGREE;
#pragma GCC unroll 16
            for (int q = 0; q < DEGREE; ++q) F[nb[base + q]] = fmaf(w[base + q], delta, F[nb[base + q]]);
        } else {
            for (long long q = ptr[i]; q < ptr[i + 1]; ++q) F[nb[q]] = fmaf(w[q], delta, F[nb[q]]);
        }
    }
}

// One replica: the sweep's thresholds in one vector pass, then the visits (the same updates and sums as the
// lanes).
template <int DEGREE>
void sparse_single(const Problem& p, const int r, const int t0, const int t1, Scratch& sc) {
    typedef Lanes<16>::u U;
    const int n = p.n;
    float* __restrict__ S = p.s + (long long)r * n;
    float* __restrict__ F = p.field + (long long)r * n;
    float* B = p.best_s + (long long)r * n;
    if (t0 == 0) sparse_start(p, r, 1, S, F, B);
    double e = p.e[r], best = p.best_e[r];
    float* __restrict__ threshold = sc.threshold.data();
    float* __restrict__ change = sc.change.data();
    int* order = sc.order.data();
    const int body = n / 16 * 16;
    const U iota = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    for (int t = t0; t < t1; ++t) {
        const Keys k(p.seed0, p.seed1, (u32)t + 1u);
        p.order_for(t, t0, order);
        const u32 key = word(k.b, p.seed1, (u32)r);
        const float beta = p.beta(t, r);
        for (int i = 0; i < body; i += 16)
            store(threshold + i, exponential<16>(fmix32(fmix32((iota + (u32)i) * GOLDEN + k.a) ^ key)));
        for (int i = body; i < n; ++i) threshold[i] = exponential(word(k.a, key, (u32)i));
        visit_all<DEGREE>(n, beta, order, S, F, threshold, change, p.ptr, p.nb, p.w);
        Lanes<2>::d acc = {};  // accumulator m mod 2 in lane m mod 2
        const int pairs = n / 2 * 2;
        for (int m = 0; m < pairs; m += 2) acc += __builtin_convertvector(load<Lanes<2>::f>(change + m), Lanes<2>::d);
        if (pairs < n) acc[0] += (double)change[pairs];
        e += acc[0] + acc[1];
        if (e < best) {
            best = e;
            memcpy(B, S, sizeof(float) * n);
        }
        p.group_best[(long long)r * p.sweeps + t] = best;
    }
    p.e[r] = e;
    p.best_e[r] = best;
}

// ------------------------------------------------------------------ dense, a batch of replicas
// The order visits whole blocks of DENSE_BLOCK consecutive spins. In a block a replica decides each visit
// from its fields at the block's start plus the block's earlier flips (c, kept with the block's own rows
// J[i, block]); after the block it adds the rows of J of its flips to its fields in one pass, in chunks of
// 16 spins: one store per field per block instead of one per flip. The batch's replicas take the block in
// turn while its rows of J are in cache.
void dense_batch(const Problem& p, const int g, const int batch, const int t0, const int t1, Scratch& sc) {
    typedef Lanes<16>::f V;
    const int n = p.n, r0 = g * batch, r1 = std::min(r0 + batch, p.replicas), body = n / 16 * 16;
    if (t0 == 0) {
        const Keys k0(p.seed0, p.seed1, 0u);
        for (int r = r0; r < r1; ++r) {
            float* __restrict__ S = p.s + (long long)r * n;
            float* __restrict__ F = p.field + (long long)r * n;
            const u32 key = word(k0.b, p.seed1, (u32)r);
            for (int i = 0; i < n; ++i) S[i] = p.initial_spin(k0, key, r, i);
            memcpy(F, p.h, sizeof(float) * n);
            for (int jj = 0; jj < n; ++jj) {  // f = h + sum_j s_j J[j, :] (J symmetric), in a fixed order
                const float sj = S[jj];
                const float* __restrict__ row = p.j + (long long)jj * n;
#pragma omp simd
                for (int i = 0; i < n; ++i) F[i] = fmaf(sj, row[i], F[i]);
            }
            double e = 0.0;
            for (int i = 0; i < n; ++i) e += 0.5 * (double)S[i] * ((double)p.h[i] + (double)F[i]);
            p.e[r] = p.best_e[r] = e;
            memcpy(p.best_s + (long long)r * n, S, sizeof(float) * n);
        }
    }
    int* order = sc.order.data();
    const V zero = {};
    for (int t = t0; t < t1; ++t) {
        const Keys k(p.seed0, p.seed1, (u32)t + 1u);
        p.order_for(t, t0, order);
        for (int r = r0; r < r1; ++r) {
            const u32 key = word(k.b, p.seed1, (u32)r);
            float* __restrict__ th = sc.threshold.data() + (long long)(r - r0) * n;
#pragma omp simd
            for (int i = 0; i < n; ++i) th[i] = exponential(word(k.a, key, (u32)i));
        }
        for (int m0 = 0; m0 < n; ) {
            const int base = order[m0] / DENSE_BLOCK * DENSE_BLOCK, size = std::min(DENSE_BLOCK, n - base);
            const int* spin = order + m0;
            bool any = false;
            for (int r = r0; r < r1; ++r) {  // each replica's visits of the block, its flips recorded
                float* __restrict__ S = p.s + (long long)r * n;
                const float* __restrict__ F = p.field + (long long)r * n;
                const float* __restrict__ th = sc.threshold.data() + (long long)(r - r0) * n;
                int* flipped = sc.flipped.data() + (r - r0) * DENSE_BLOCK;
                float* step = sc.step.data() + (r - r0) * DENSE_BLOCK;
                const float beta = p.beta(t, r);
                float c[DENSE_BLOCK] = {};  // the block's flips so far, in the fields of the block's spins
                int count = 0;
                double e = p.e[r];
                for (int a = 0; a < size; ++a) {
                    const int i = spin[a];
                    const float s = S[i];
                    const float de = -2.0f * s * (F[i] + c[i - base]);
                    if (beta * de < th[i]) {
                        S[i] = -s;
                        e += (double)de;
                        const float st = -2.0f * s;  // 2 s_new
                        const float* __restrict__ own = p.j + (long long)i * n + base;
#pragma omp simd
                        for (int b = 0; b < size; ++b) c[b] = fmaf(st, own[b], c[b]);
                        flipped[count] = i;
                        step[count++] = st;
                    }
                }
                p.e[r] = e;
                sc.flips[r - r0] = count;
                any |= count > 0;
            }
            m0 += size;
            if (!any) continue;
            // fields += sum over each replica's flips of 2 s_new J[i, :], in flip order. Chunk by chunk of 64
            // spins (four independent FMA chains) for the whole batch, so that a chunk of the block's rows of J
            // is read from L2 once and then from L1 by the other replicas.
            int q = 0;
            for (; q + 64 <= body; q += 64) {
                for (int r = r0; r < r1; ++r) {
                    const int count = sc.flips[r - r0];
                    if (!count) continue;
                    const int* flipped = sc.flipped.data() + (r - r0) * DENSE_BLOCK;
                    const float* step = sc.step.data() + (r - r0) * DENSE_BLOCK;
                    float* F = p.field + (long long)r * n + q;
                    V f0 = load<V>(F), f1 = load<V>(F + 16), f2 = load<V>(F + 32), f3 = load<V>(F + 48);
                    for (int l = 0; l < count; ++l) {
                        const float* row = p.j + (long long)flipped[l] * n + q;
                        const V st = zero + step[l];
                        f0 = fma_lanes(st, load<V>(row), f0);
                        f1 = fma_lanes(st, load<V>(row + 16), f1);
                        f2 = fma_lanes(st, load<V>(row + 32), f2);
                        f3 = fma_lanes(st, load<V>(row + 48), f3);
                    }
                    store(F, f0);
                    store(F + 16, f1);
                    store(F + 32, f2);
                    store(F + 48, f3);
                }
            }
            for (int r = r0; r < r1; ++r) {
                const int count = sc.flips[r - r0];
                const int* flipped = sc.flipped.data() + (r - r0) * DENSE_BLOCK;
                const float* step = sc.step.data() + (r - r0) * DENSE_BLOCK;
                float* F = p.field + (long long)r * n;
                for (int qq = q; qq < body; qq += 16) {
                    V f = load<V>(F + qq);
                    for (int l = 0; l < count; ++l)
                        f = fma_lanes(zero + step[l], load<V>(p.j + (long long)flipped[l] * n + qq), f);
                    store(F + qq, f);
                }
                for (int qq = body; qq < n; ++qq)
                    for (int l = 0; l < count; ++l) F[qq] = fmaf(step[l], p.j[(long long)flipped[l] * n + qq], F[qq]);
            }
        }
        double low = 1e300;
        for (int r = r0; r < r1; ++r) {
            if (p.e[r] < p.best_e[r]) {
                p.best_e[r] = p.e[r];
                memcpy(p.best_s + (long long)r * n, p.s + (long long)r * n, sizeof(float) * n);
            }
            low = std::min(low, p.best_e[r]);
        }
        p.group_best[(long long)g * p.sweeps + t] = low;
    }
}

// ------------------------------------------------------------------ replica exchange
// After sweep t = tau - 1: pairs of neighbouring temperatures (k, k+1), k = parity, parity + 2, ..., of
// each chain swap temperatures with probability min(1, exp((beta_k - beta_k+1)(E_k - E_k+1))).
void exchange(const Problem& p, int* holder, const u32 tau, const int parity) {
    const Keys k(p.seed0, p.seed1, tau);
    for (int t = parity; t + 1 < p.temps; t += 2) {
        for (int c = 0; c < p.chains; ++c) {
            const int lo = t * p.chains + c, hi = lo + p.chains;
            const int a = holder[lo], b = holder[hi];
            const double log_ratio = ((double)p.betas[t] - (double)p.betas[t + 1]) * (p.e[a] - p.e[b]);
            const double u = ((double)(word(k.d, p.seed1, (u32)lo) >> 8) + 0.5) * 5.9604644775390625e-08;
            if (log(u) < log_ratio) {
                holder[lo] = b;
                holder[hi] = a;
                p.temp[a] = t + 1;
                p.temp[b] = t;
            }
        }
    }
}

// Energy x^T q x (no offset) of a 0/1 state, exactly (double) from the QUBO's own matrix: CSR (sparse) or
// dense rows.
double qubo_energy(const int n, const unsigned char* x, const long long* ptr, const int* col, const double* val,
                   const double* dense) {
    double e = 0.0;
    for (int i = 0; i < n; ++i) {
        if (!x[i]) continue;
        double row = 0.0;
        if (dense) {
            const double* q = dense + (long long)i * n;
#pragma omp simd reduction(+ : row)
            for (int jj = 0; jj < n; ++jj) row += x[jj] ? q[jj] : 0.0;
        } else {
            for (long long k = ptr[i]; k < ptr[i + 1]; ++k) row += x[col[k]] ? val[k] : 0.0;
        }
        e += row;
    }
    return e;
}

int thread_count(const int threads) {
#ifdef _OPENMP
    return threads > 0 ? threads : omp_get_max_threads();
#else
    (void)threads;
    return 1;
#endif
}

}  // namespace

// -log u of each word (tests compare it with NumPy's log).
extern "C" void qsn_anneal_exponential(const long long count, const unsigned* words, float* out) {
    for (long long i = 0; i < count; ++i) out[i] = exponential(words[i]);
}

// The visiting order of sweep t of a run with seed words (s0, s1), orders redrawn every `every` sweeps, of the
// sparse path (dense 0) or of the dense one.
extern "C" void qsn_anneal_order(const int n, const unsigned s0, const unsigned s1, const int every, const int t,
                                 const int dense, int* order) {
    if (dense) dense_order(n, s0, s1, every, t, order);
    else visiting_order(n, s0, s1, every, t, order);
}

// Problem layouts from the QUBO matrix q (n, n) float64, in one pass over q. The Ising form (qsn.qubo.model):
// h = rowsum(q) / 2, J = offdiag(q) / 2, offset = qubo offset + sum(diag) / 2 + sum(offdiag) / 4; sums[0..1]
// receive sum(diag) and sum(offdiag).

// Dense: j (n, n) float32 with zero diagonal, h (n,) float32.
extern "C" void qsn_anneal_dense_layout(const int n, const double* q, float* j, float* h, double* sums) {
    double diag = 0.0, off = 0.0;
    for (int i = 0; i < n; ++i) {
        const double* row = q + (long long)i * n;
        float* out = j + (long long)i * n;
        double total = 0.0;
        for (int k = 0; k < n; ++k) {
            total += row[k];
            out[k] = (float)(0.5 * row[k]);
        }
        out[i] = 0.0f;
        diag += row[i];
        off += total - row[i];
        h[i] = (float)(0.5 * total);
    }
    sums[0] = diag;
    sums[1] = off;
}

// Sparse: the CSR of q (q_ptr (n + 1,), q_col/q_val with room for n (max_degree + 1) entries) for the final
// energies, h (n,), and the neighbour lists of J: ptr (n + 1,), nb, w (room for n max_degree), in increasing
// index. stats: [nnz of q, the common degree of every spin or 0]. Returns 0, or 1 when a row has more than
// max_degree off-diagonal nonzeros (the caller then takes the dense layout).
extern "C" int qsn_anneal_sparse_layout(
    const int n, const double* q, const int max_degree, long long* q_ptr, int* q_col, double* q_val, float* h,
    long long* ptr, int* nb, float* w, long long* stats, double* sums)
{
    double diag = 0.0, off = 0.0;
    long long nnz = 0, entries = 0;
    q_ptr[0] = ptr[0] = 0;
    int common = -1;
    for (int i = 0; i < n; ++i) {
        const double* row = q + (long long)i * n;
        int d = 0;
        double total = 0.0;
        for (int k0 = 0; k0 < n; k0 += 16) {
            const int k1 = std::min(n, k0 + 16);
            if (k1 - k0 == 16) {  // 16 entries all +-0 iff their bits other than the sign are 0
                unsigned long long bits[16], any = 0;
                memcpy(bits, row + k0, sizeof bits);
                for (int l = 0; l < 16; ++l) any |= bits[l];
                if ((any << 1) == 0) continue;
            }
            for (int k = k0; k < k1; ++k) {
                if (row[k] == 0.0) continue;
                q_col[nnz] = k;
                q_val[nnz++] = row[k];
                total += row[k];
                if (k == i) continue;
                if (++d > max_degree) return 1;
                nb[entries] = k;
                w[entries++] = (float)(0.5 * row[k]);
            }
        }
        common = common == -1 || common == d ? d : -2;
        h[i] = (float)(0.5 * total);
        diag += row[i];
        off += total - row[i];
        q_ptr[i + 1] = nnz;
        ptr[i + 1] = entries;
    }
    stats[0] = nnz;
    stats[1] = common > 0 ? common : 0;
    sums[0] = diag;
    sums[1] = off;
    return 0;
}

// One annealing or parallel-tempering run; returns 0, 1 when memory ran out, 2 for lanes out of range.
//   layout 0: sparse (h, ptr, nb, w; degree > 0 when every spin has that many neighbours), `lanes` 1, 8, 16;
//   layout 1: dense (j, h), `lanes` replicas per batch (1..64).
//   every: sweeps per visiting order. swap_every 0: no exchanges (annealing: temps = 1, chains = replicas).
//   Energies of the outputs from the QUBO (q_ptr/q_col/q_val CSR, or q_dense), without its offset.
//   Outputs: x (replicas, n) 0/1 in slot order (row k * chains + c: chain c at temperature k), energies
//   (replicas,), best_x (n,), best_energy (1,), trace (sweeps,) lowest carried Ising energy so far.
extern "C" int qsn_anneal(
    const int layout, const int n, const int replicas, const int sweeps, const int temps, const int chains,
    const int swap_every, const int every, const int lanes, const int threads, const unsigned seed0,
    const unsigned seed1, const float* schedule, const float* betas, const signed char* init, const float* h,
    const long long* ptr, const int* nb, const float* w, const int degree, const float* j,
    const long long* q_ptr, const int* q_col, const double* q_val, const double* q_dense,
    unsigned char* x, double* energies, unsigned char* best_x, double* best_energy, double* trace)
{
    const bool sparse = layout == 0;
    if (sparse ? (lanes != 1 && lanes != 8 && lanes != 16) : (lanes < 1 || lanes > 64)) return 2;
    if (every < 1) return 2;
    try {
        const int G = lanes;
        const int groups = (replicas + G - 1) / G;
        const int padded = sparse ? groups * G : replicas;
        Buffer<int> temp(padded), holder(replicas);
        Buffer<double> e(padded), best_e(padded), group_best((size_t)groups * sweeps);
        Buffer<float> s((size_t)padded * n), best_s((size_t)padded * n), field((size_t)padded * n);
        for (int r = 0; r < padded; ++r) temp[r] = r < replicas ? r / chains : 0;
        for (int r = 0; r < replicas; ++r) holder[r] = r;
        Problem p = {n, replicas, padded, sweeps, temps, chains, every, seed0, seed1, schedule, betas, init, h,
                     ptr, nb, w, degree, j, temp.p, e.p, best_e.p, group_best.p, s.p, best_s.p, field.p};
        const int nt = std::min(thread_count(threads), groups);  // idle OpenMP threads would only spin
        const int segment = swap_every > 0 ? swap_every : sweeps;
        for (int t0 = 0; t0 < sweeps; t0 += segment) {
            const int t1 = std::min(sweeps, t0 + segment);
#pragma omp parallel num_threads(nt)
            {
                Scratch sc(p, G);
#pragma omp for schedule(dynamic, 1)
                for (int g = 0; g < groups; ++g) {
                    if (!sparse) dense_batch(p, g, G, t0, t1, sc);
                    else if (G == 8) sparse_group<8>(p, g, t0, t1, sc);
                    else if (G == 16) sparse_group<16>(p, g, t0, t1, sc);
                    else switch (degree) {  // every spin with the same small number of neighbours: unrolled
                        case 2: sparse_single<2>(p, g, t0, t1, sc); break;
                        case 3: sparse_single<3>(p, g, t0, t1, sc); break;
                        case 4: sparse_single<4>(p, g, t0, t1, sc); break;
                        case 6: sparse_single<6>(p, g, t0, t1, sc); break;
                        default: sparse_single<0>(p, g, t0, t1, sc);
                    }
                }
            }
            if (swap_every > 0 && t1 % swap_every == 0)
                exchange(p, holder.p, (u32)t1, (t1 / swap_every) % 2);
        }
        for (int t = 0; t < sweeps; ++t) {
            double low = 1e300;
            for (int g = 0; g < groups; ++g) low = std::min(low, group_best[(size_t)g * sweeps + t]);
            trace[t] = low;
        }
        // Outputs in slot order; energies from the QUBO itself.
        std::vector<double> best_each(replicas);
        std::vector<unsigned char> best_all((size_t)replicas * n);
        const int out_threads = std::min(thread_count(threads), std::max(1, (int)((long long)replicas * n / 65536)));
#pragma omp parallel for num_threads(out_threads) schedule(dynamic, 1)
        for (int r = 0; r < replicas; ++r) {
            const int slot = temp[r] * chains + r % chains;
            unsigned char* out = x + (long long)slot * n;
            unsigned char* best = best_all.data() + (long long)r * n;
            for (int i = 0; i < n; ++i) {
                const long long at = sparse ? ((long long)(r / G) * n + i) * G + r % G : (long long)r * n + i;
                out[i] = s[at] > 0.0f;
                best[i] = best_s[at] > 0.0f;
            }
            energies[slot] = qubo_energy(n, out, q_ptr, q_col, q_val, q_dense);
            best_each[r] = qubo_energy(n, best, q_ptr, q_col, q_val, q_dense);
        }
        int arg = 0;
        for (int r = 1; r < replicas; ++r)
            if (best_each[r] < best_each[arg]) arg = r;
        memcpy(best_x, best_all.data() + (long long)arg * n, n);
        *best_energy = best_each[arg];
        return 0;
    } catch (const std::bad_alloc&) {
        return 1;
    }
}
