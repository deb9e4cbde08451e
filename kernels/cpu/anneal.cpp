// The native Metropolis sweep of qsn.qubo.anneal / parallel_tempering (backend="native"). The chain is
// the one qsn/qubo/native.py documents: Ising spins s = 2x - 1, local fields f = h + J s, spin i flips iff
// beta dE_i < -log u with dE_i = -2 s_i f_i, and every random number is a counter hash of (seed, sweep,
// replica, spin), so results depend on neither the thread count nor how replicas are grouped.
//
// Layout (docs in qsn/qubo/native.py):
//   * sparse: spins relabelled so that colour classes (no two spins of a class coupled) are contiguous,
//     each class with neighbour lists of its own width. A sweep visits the spins in the order
//     (label, colour, spin), label a random bit per spin and sweep shared by all replicas; spins of one
//     label and class are uncoupled, so they may be updated in any order or at once. Replicas go in
//     groups of G lanes with spin i of the group's replicas contiguous (S[i * G + lane]): one spin update
//     is one vector operation across the group, fields summed from the neighbours' rows. G = 1 (few
//     replicas) vectorises across the spins of a class instead (neighbour spins gathered).
//   * dense: each replica has its spins and carried fields contiguous; a sweep visits the spins in a
//     random permutation per sweep (Fisher-Yates, shared by all replicas), and a flip of spin i updates
//     the replica's fields with row i of J (vectorised across spins). Replicas go in batches that take
//     each spin in turn, so a row of J is read once per batch.
// OpenMP threads take whole groups. Parallel tempering runs the sweeps between exchange rounds as one
// parallel segment, then exchanges temperatures (not states) between replicas on one thread.
#include "common.cuh"
#pragma GCC diagnostic ignored "-Wpsabi"  // the ABI note on 128-byte vector arguments (inlined)
#include <stdlib.h>
#include <string.h>
#include <algorithm>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <new>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

typedef unsigned u32;
constexpr u32 GOLDEN = 0x9E3779B9u;

#define QSN_ALWAYS inline __attribute__((always_inline))

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
    int n, replicas, padded, sweeps, temps, chains;
    u32 seed0, seed1;
    const float* schedule;  // (sweeps,)
    const float* betas;     // (temps,)
    const signed char* init;  // (replicas, n) +-1 in the original order, or null
    const float* h;         // (n,) Ising fields, relabelled (sparse) or original order (dense)
    // sparse
    int classes;
    const int* cls_start;   // (classes + 1,)
    const int* cls_deg;     // (classes,)
    const long long* cls_off;  // (classes,) start of each class's (n_c, deg_c) neighbour lists
    const int* nb;          // relabelled neighbours, (deg_c, n_c) per class: column q holds every spin's
                            // q-th neighbour (a spin's own index with weight 0 pads a list)
    const float* w;         // their couplings J
    const int* orig;        // (n,) original index of relabelled spin i
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
};

struct Scratch {
    std::vector<int> label;
    std::vector<int> list0, list1, count0, count1;
    std::vector<float> threshold;
    std::vector<int> perm;
    std::vector<u32> words;
    Scratch(const Problem& p, int batch)
        : label(p.n), list0(p.n), list1(p.n), count0(p.classes > 0 ? p.classes : 1),
          count1(p.classes > 0 ? p.classes : 1), threshold((size_t)p.n * batch), perm(p.n),
          words(p.n) {}
};

// Start of a sparse group of G lanes (G = 1: one replica): spins, fields f = h + J s (float32, neighbours in
// list order, the order every path uses), carried energy sum_i s_i (h_i + f_i) / 2 (float64), best = start.
void sparse_start(const Problem& p, const int r0, const int G, float* S, float* F, float* B) {
    const int n = p.n;
    const Keys k0(p.seed0, p.seed1, 0u);
    for (int l = 0; l < G; ++l) {
        const u32 key = word(k0.b, p.seed1, (u32)(r0 + l));
        for (int i = 0; i < n; ++i) S[(long long)i * G + l] = p.initial_spin(k0, key, r0 + l, p.orig[i]);
    }
    memcpy(B, S, sizeof(float) * n * G);
    for (int l = 0; l < G; ++l) {
        double e = 0.0;
        for (int c = 0; c < p.classes; ++c) {
            const int d = p.cls_deg[c], count = p.cls_start[c + 1] - p.cls_start[c];
            for (int i = p.cls_start[c]; i < p.cls_start[c + 1]; ++i) {
                const long long base = p.cls_off[c] + (i - p.cls_start[c]);
                float f = p.h[i];
                for (int q = 0; q < d; ++q) {
                    const long long at = base + (long long)q * count;
                    f = fmaf(p.w[at], S[(long long)p.nb[at] * G + l], f);
                }
                F[(long long)i * G + l] = f;
                e += 0.5 * (double)S[(long long)i * G + l] * ((double)p.h[i] + (double)f);
            }
        }
        p.e[r0 + l] = p.best_e[r0 + l] = e;
    }
}

// The label bit of each spin in a sweep with key word c: the top bit of word(c, s1, original index).
__attribute__((noinline)) void labels(int* __restrict__ label, const int* __restrict__ orig, const int n,
                                      const u32 c, const u32 s1) {
#pragma omp simd
    for (int i = 0; i < n; ++i) label[i] = (int)(word(c, s1, (u32)orig[i]) >> 31);
}

// ------------------------------------------------------------------ sparse, G replicas as lanes
// Spin i of the group's replicas is one vector S[i * G .. i * G + G); its visit decides all lanes at once and
// adds w_ij (s_new - s_old) to the fields of its neighbours j (zero in the lanes that keep their spin).
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
    int* label = sc.label.data();
    int *list0 = sc.list0.data(), *list1 = sc.list1.data();
    const V zero = {};
    for (int t = t0; t < t1; ++t) {
        const Keys k(p.seed0, p.seed1, (u32)t + 1u);
        U key;
        V beta;
        for (int l = 0; l < G; ++l) { key[l] = word(k.b, p.seed1, (u32)(r0 + l)); beta[l] = p.beta(t, r0 + l); }
        labels(label, p.orig, n, k.c, p.seed1);
        for (int c = 0; c < p.classes; ++c) {  // each class's spins of label 0 and 1, in increasing order
            int n0 = p.cls_start[c], n1 = p.cls_start[c];
            for (int i = p.cls_start[c]; i < p.cls_start[c + 1]; ++i) {
                list0[n0] = i;
                list1[n1] = i;
                n0 += 1 - label[i];
                n1 += label[i];
            }
            sc.count0[c] = n0 - p.cls_start[c];
            sc.count1[c] = n1 - p.cls_start[c];
        }
        for (int phase = 0; phase < 2; ++phase) {
            const int* list = phase ? list1 : list0;
            for (int c = 0; c < p.classes; ++c) {
                const int d = p.cls_deg[c], start = p.cls_start[c];
                const int count = phase ? sc.count1[c] : sc.count0[c];
                const long long stride = p.cls_start[c + 1] - start;
                for (int m = start; m < start + count; ++m) {
                    const int i = list[m];
                    float* si = S + (long long)i * G;
                    const V s = load<V>(si), f = load<V>(F + (long long)i * G);
                    const V de = -2.0f * s * f;
                    const V threshold = exponential<G>(fmix32(key ^ fmix32((u32)p.orig[i] * GOLDEN + k.a)));
                    const auto flip = beta * de < threshold;
                    store(si, flip ? -s : s);
                    e += __builtin_convertvector(flip ? de : zero, D);
                    const V delta = flip ? -2.0f * s : zero;  // s_new - s_old
                    const int* nb = p.nb + p.cls_off[c] + (i - start);
                    const float* w = p.w + p.cls_off[c] + (i - start);
                    for (int q = 0; q < d; ++q) {
                        float* fj = F + (long long)nb[q * stride] * G;
                        store(fj, fma_lanes(zero + w[q * stride], delta, load<V>(fj)));
                    }
                }
            }
        }
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

// Writes the i in [start, end) with flag[i] != 0 to which[0..m), in increasing order; returns m.
QSN_ALWAYS int compact(const int* __restrict__ flag, int* __restrict__ which, const int start, const int end) {
    int m = 0, i = start;
#if defined(__AVX512F__)
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (; i + 16 <= end; i += 16) {
        const __m512i f = _mm512_loadu_si512(flag + i);
        const __mmask16 k = _mm512_test_epi32_mask(f, f);
        _mm512_mask_compressstoreu_epi32(which + m, k, _mm512_add_epi32(_mm512_set1_epi32(i), iota));
        m += __builtin_popcount((unsigned)k);
    }
#endif
    for (; i < end; ++i) {
        which[m] = i;
        m += flag[i] != 0;
    }
    return m;
}

// ------------------------------------------------------------------ sparse, one replica, spins as lanes
// The spins of one label and class are decided in one vector loop (fields contiguous); the fields of the
// flipped spins' neighbours are then updated in spin order, the updates and sums sparse_group makes.
void sparse_single(const Problem& p, const int r, const int t0, const int t1, Scratch& sc) {
    const int n = p.n;
    float* __restrict__ S = p.s + (long long)r * n;
    float* __restrict__ F = p.field + (long long)r * n;
    float* B = p.best_s + (long long)r * n;
    if (t0 == 0) sparse_start(p, r, 1, S, F, B);
    double e = p.e[r], best = p.best_e[r];
    int* label = sc.label.data();
    int* __restrict__ flag = sc.list0.data();
    int* __restrict__ which = sc.list1.data();
    float* __restrict__ threshold = sc.threshold.data();
    for (int t = t0; t < t1; ++t) {
        const Keys k(p.seed0, p.seed1, (u32)t + 1u);
        const u32 key = word(k.b, p.seed1, (u32)r);
        const float beta = p.beta(t, r);
        labels(label, p.orig, n, k.c, p.seed1);
#pragma omp simd
        for (int i = 0; i < n; ++i) threshold[i] = exponential(word(k.a, key, (u32)p.orig[i]));
        for (int phase = 0; phase < 2; ++phase) {
            for (int c = 0; c < p.classes; ++c) {
                const int d = p.cls_deg[c], start = p.cls_start[c], end = p.cls_start[c + 1];
                const long long count = end - start;
#pragma omp simd
                for (int i = start; i < end; ++i) {
                    const float s = S[i];
                    const bool flip = label[i] == phase && beta * (-2.0f * s * F[i]) < threshold[i];
                    S[i] = flip ? -s : s;
                    flag[i] = flip;
                }
                const int m = compact(flag, which, start, end);
                for (int k2 = 0; k2 < m; ++k2) {
                    const int i = which[k2];
                    const float s_new = S[i];
                    e += (double)(-2.0f * -s_new * F[i]);  // dE of the flip, from the old spin
                    const float delta = 2.0f * s_new;
                    const int* nb = p.nb + p.cls_off[c] + (i - start);
                    const float* w = p.w + p.cls_off[c] + (i - start);
                    for (int q = 0; q < d; ++q) F[nb[q * count]] = fmaf(w[q * count], delta, F[nb[q * count]]);
                }
            }
        }
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
void dense_batch(const Problem& p, const int g, const int batch, const int t0, const int t1, Scratch& sc) {
    const int n = p.n, r0 = g * batch, r1 = std::min(r0 + batch, p.replicas);
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
    int* __restrict__ perm = sc.perm.data();
    u32* __restrict__ words = sc.words.data();
    for (int t = t0; t < t1; ++t) {
        const Keys k(p.seed0, p.seed1, (u32)t + 1u);
#pragma omp simd
        for (int m = 0; m < n; ++m) words[m] = word(k.c, p.seed1, (u32)m);
        for (int m = 0; m < n; ++m) perm[m] = m;
        for (int m = n - 1; m > 0; --m) {  // Fisher-Yates: position m takes a uniform pick of 0..m
            const int pick = (int)__umulhi(words[m], (u32)m + 1u);
            std::swap(perm[m], perm[pick]);
        }
        float beta[64];
        for (int r = r0; r < r1; ++r) {
            const u32 key = word(k.b, p.seed1, (u32)r);
            float* __restrict__ th = sc.threshold.data() + (long long)(r - r0) * n;
#pragma omp simd
            for (int i = 0; i < n; ++i) th[i] = exponential(word(k.a, key, (u32)i));
            beta[r - r0] = p.beta(t, r);
        }
        for (int m = 0; m < n; ++m) {
            const int i = perm[m];
            const float* __restrict__ row = p.j + (long long)i * n;
            for (int r = r0; r < r1; ++r) {
                float* __restrict__ S = p.s + (long long)r * n;
                float* __restrict__ F = p.field + (long long)r * n;
                const float s = S[i];
                const float de = -2.0f * s * F[i];
                if (beta[r - r0] * de < sc.threshold[(long long)(r - r0) * n + i]) {
                    S[i] = -s;
                    p.e[r] += (double)de;
                    const float step = -2.0f * s;  // 2 s_new
#pragma omp simd
                    for (int q = 0; q < n; ++q) F[q] = fmaf(step, row[q], F[q]);
                }
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

// Greedy colouring of the graph with CSR (ptr, col), vertices taken in `order` (largest degree first):
// each gets the smallest colour none of its coloured neighbours has (qsn.qubo.annealer._colouring).
extern "C" void qsn_anneal_colour(const int n, const long long* ptr, const int* col, const int* order, int* colour) {
    std::vector<int> stamp(n + 1, -1);
    for (int i = 0; i < n; ++i) colour[i] = -1;
    for (int m = 0; m < n; ++m) {
        const int i = order[m];
        const long long degree = ptr[i + 1] - ptr[i];
        for (long long k = ptr[i]; k < ptr[i + 1]; ++k) {
            const int c = colour[col[k]];
            if (c >= 0 && c <= degree) stamp[c] = i;
        }
        int c = 0;
        while (stamp[c] == i) ++c;
        colour[i] = c;
    }
}

// One annealing or parallel-tempering run; returns 0, 1 when memory ran out, 2 for lanes out of range.
//   layout 0: sparse (classes, cls_*, nb, w, orig, h relabelled), `lanes` in {1, 8, 16};
//   layout 1: dense (j, h in the original order), `lanes` replicas per batch (1..64).
//   swap_every 0: no exchanges (annealing: temps = 1, chains = replicas).
//   Energies of the outputs from the QUBO (q_ptr/q_col/q_val CSR, or q_dense), without its offset.
//   Outputs: x (replicas, n) 0/1 in slot order (row k * chains + c: chain c at temperature k), energies
//   (replicas,), best_x (n,), best_energy (1,), trace (sweeps,) lowest carried Ising energy so far.
extern "C" int qsn_anneal(
    const int layout, const int n, const int replicas, const int sweeps, const int temps, const int chains,
    const int swap_every, const int lanes, const int threads, const unsigned seed0, const unsigned seed1,
    const float* schedule, const float* betas, const signed char* init, const float* h,
    const int classes, const int* cls_start, const int* cls_deg, const long long* cls_off, const int* nb,
    const float* w, const int* orig, const float* j,
    const long long* q_ptr, const int* q_col, const double* q_val, const double* q_dense,
    unsigned char* x, double* energies, unsigned char* best_x, double* best_energy, double* trace)
{
    const bool sparse = layout == 0;
    if (sparse ? (lanes != 1 && lanes != 8 && lanes != 16) : (lanes < 1 || lanes > 64)) return 2;
    try {
        const int G = lanes;
        const int groups = (replicas + G - 1) / G;
        const int padded = sparse ? groups * G : replicas;
        Buffer<int> temp(padded), holder(replicas);
        Buffer<double> e(padded), best_e(padded), group_best((size_t)groups * sweeps);
        Buffer<float> s((size_t)padded * n), best_s((size_t)padded * n);
        Buffer<float> field((size_t)padded * n);
        for (int r = 0; r < padded; ++r) temp[r] = r < replicas ? r / chains : 0;
        for (int r = 0; r < replicas; ++r) holder[r] = r;
        Problem p = {n, replicas, padded, sweeps, temps, chains, seed0, seed1, schedule, betas, init, h,
                     classes, cls_start, cls_deg, cls_off, nb, w, orig, j,
                     temp.p, e.p, best_e.p, group_best.p, s.p, best_s.p, field.p};
        const int nt = thread_count(threads);
        const int every = swap_every > 0 ? swap_every : sweeps;
        for (int t0 = 0; t0 < sweeps; t0 += every) {
            const int t1 = std::min(sweeps, t0 + every);
#pragma omp parallel num_threads(nt)
            {
                Scratch sc(p, sparse ? 1 : G);
#pragma omp for schedule(dynamic, 1)
                for (int g = 0; g < groups; ++g) {
                    if (!sparse) dense_batch(p, g, G, t0, t1, sc);
                    else if (G == 1) sparse_single(p, g, t0, t1, sc);
                    else if (G == 8) sparse_group<8>(p, g, t0, t1, sc);
                    else sparse_group<16>(p, g, t0, t1, sc);
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
        // Outputs in the original spin order and slot order; energies from the QUBO itself.
        std::vector<double> best_each(replicas);
        std::vector<unsigned char> best_all((size_t)replicas * n);
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
        for (int r = 0; r < replicas; ++r) {
            const int slot = temp[r] * chains + r % chains;
            unsigned char* out = x + (long long)slot * n;
            unsigned char* best = best_all.data() + (long long)r * n;
            for (int i = 0; i < n; ++i) {
                const long long at = sparse ? ((long long)(r / G) * n + i) * G + r % G : (long long)r * n + i;
                const int to = sparse ? orig[i] : i;
                out[to] = s[at] > 0.0f;
                best[to] = best_s[at] > 0.0f;
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
