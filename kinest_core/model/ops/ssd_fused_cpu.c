// SPDX-License-Identifier: GPL-3.0-or-later
// Fused CPU loops for the factorised chunked SSD op (kinest_core/model/ssd.py, _FactorisedSSD).
//
// PyTorch runs each elementwise step of that op as its own pass over multi-megabyte tensors
// (scale, cast to bf16, cast back, scale again, reduce); here each group of steps that reads the
// same rows is one pass. The matmuls stay in PyTorch. Every function works on blocks
// [n0, n1) of the N = batch * chunks axis (or [b0, b1) of the batch for the state passes), so the
// caller can split work across threads. Layouts (element strides, all row-major):
//   token rows  (N, q, h, p): token t = n * q + i at t * tok (tok >= h * p), heads then p contiguous
//   "mm" buffers: float32 (bf == 0) or bfloat16 (bf == 1), the matmul operand/result dtype;
//     stacked operands [rows; state rows] are (N, q + s, h * p) blocks of `block` elements.
//   per-head scalars (N, q, h) and (batch, chunks, h): contiguous float32.
// bfloat16 stores round to nearest even, as PyTorch does, so both paths agree bit for bit on
// every cast; sums may differ in order (float32 rounding only).
#include <stdint.h>
#include <string.h>

typedef uint16_t bf16_t;
typedef int64_t i64;

static inline float bf16_load(bf16_t v) {
    uint32_t u = ((uint32_t)v) << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline bf16_t bf16_store(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if (f != f) return (bf16_t)0x7FC0;
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (bf16_t)(u >> 16);
}

#define INLINE static inline __attribute__((always_inline))

INLINE float ld(const void *base, i64 i, int bf) {
    return bf ? bf16_load(((const bf16_t *)base)[i]) : ((const float *)base)[i];
}

INLINE void st(void *base, i64 i, float v, int bf) {
    if (bf)
        ((bf16_t *)base)[i] = bf16_store(v);
    else
        ((float *)base)[i] = v;
}

#if defined(__AVX512F__)
#include <immintrin.h>
// One 16-float row (a head of p = 16) as a vector: the hot path on AVX-512 CPUs. The loops below
// keep a plain C form for every other case; both compute the same thing.
#define HAVE_V16 1
INLINE __m512 ld16(const void *base, i64 i, int bf) {
    if (bf) {
        __m256i u = _mm256_loadu_si256((const __m256i *)((const bf16_t *)base + i));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(u), 16));
    }
    return _mm512_loadu_ps((const float *)base + i);
}

INLINE void st16(void *base, i64 i, __m512 v, int bf) {
    if (bf) {  // round to nearest even; NaN -> 0x7FC0, as bf16_store
        __m512i u = _mm512_castps_si512(v);
        __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
        __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF)));
        r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_set1_epi32(0x7FC00000));
        _mm256_storeu_si256((__m256i *)((bf16_t *)base + i), _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16)));
    } else {
        _mm512_storeu_ps((float *)base + i, v);
    }
}
#else
#define HAVE_V16 0
#endif

// dst[n, i, :] = src[n, i, h, :] * f[n, i, h]   (X~ = F x), also into the contiguous (N, q, h * p)
// `dense` (a matmul operand that must not be a strided slice of the stacked one: bmm would copy it).
INLINE void scale_rows_impl(int bf, i64 n0, i64 n1, i64 q, i64 h, i64 p, const float *src, i64 tok,
                            const float *f, void *dst, i64 block, void *dense) {
    const i64 hp = h * p;
    for (i64 n = n0; n < n1; n++)
        for (i64 i = 0; i < q; i++) {
            const i64 t = n * q + i;
            const float *s = src + t * tok;
            const float *fr = f + t * h;
            const i64 d = n * block + i * hp;
            for (i64 k = 0; k < h; k++) {
                const float fk = fr[k];
#if HAVE_V16
                if (p == 16) {
                    const __m512 v = _mm512_mul_ps(_mm512_loadu_ps(s + k * 16), _mm512_set1_ps(fk));
                    st16(dst, d + k * 16, v, bf);
                    st16(dense, t * hp + k * 16, v, bf);
                    continue;
                }
#endif
                for (i64 j = 0; j < p; j++) {
                    const float v = s[k * p + j] * fk;
                    st(dst, d + k * p + j, v, bf);
                    st(dense, t * hp + k * p + j, v, bf);
                }
            }
        }
}

// Backward, first pass over dy: gee = sum_p dy (y - D x), gyx = sum_p dy x, dW = dy * e into `gw`
// and into the contiguous `dense` (as in scale_rows).
INLINE void grad_in_rows_impl(int bf, i64 n0, i64 n1, i64 q, i64 h, i64 p, const float *gy, i64 gtok,
                              const float *y, const float *e, const float *D, const float *x, i64 xtok,
                              float *gee, float *gyx, void *gw, i64 block, void *dense) {
    const i64 hp = h * p;
    for (i64 n = n0; n < n1; n++)
        for (i64 i = 0; i < q; i++) {
            const i64 t = n * q + i;
            const float *g = gy + t * gtok;
            const float *yr = y + t * hp;
            const float *xr = x + t * xtok;
            const i64 d = n * block + i * hp;
            for (i64 k = 0; k < h; k++) {
                const float ek = e[t * h + k];
                float sy = 0.0f, sx = 0.0f;
#if HAVE_V16
                if (p == 16) {
                    const __m512 gv = _mm512_loadu_ps(g + k * 16);
                    sy = _mm512_reduce_add_ps(_mm512_mul_ps(gv, _mm512_loadu_ps(yr + k * 16)));
                    if (D) sx = _mm512_reduce_add_ps(_mm512_mul_ps(gv, _mm512_loadu_ps(xr + k * 16)));
                    const __m512 w = _mm512_mul_ps(gv, _mm512_set1_ps(ek));
                    st16(gw, d + k * 16, w, bf);
                    st16(dense, t * hp + k * 16, w, bf);
                } else
#endif
                {
                    for (i64 j = 0; j < p; j++) {
                        const float gv = g[k * p + j];
                        sy += gv * yr[k * p + j];
                        if (D) sx += gv * xr[k * p + j];
                        st(gw, d + k * p + j, gv * ek, bf);
                        st(dense, t * hp + k * p + j, gv * ek, bf);
                    }
                }
                if (D) {
                    gee[t * h + k] = sy - sx * D[k];
                    gyx[t * h + k] = sx;
                } else {
                    gee[t * h + k] = sy;
                }
            }
        }
}

// out[n, i, h, :] = W[n, i, h, :] * s[n, i, h] + D[h] a[n, i, h, :]  (W: a matmul result, contiguous),
// and where `dot` is given, dot[n, i, h] = sum_p W x. Forward output: W = [G | C] [X~; S], s = E, a = x.
// Backward, last pass: W = dX~, s = F, a = dy, dot = d F (sum_p dX~ x).
INLINE void scale_add_rows_impl(int bf, i64 n0, i64 n1, i64 q, i64 h, i64 p, const void *w, const float *s,
                                const float *D, const float *a, i64 atok, float *out, const float *x, i64 xtok,
                                float *dot) {
    const i64 hp = h * p;
    for (i64 n = n0; n < n1; n++)
        for (i64 i = 0; i < q; i++) {
            const i64 t = n * q + i;
            const float *ar = a + t * atok;
            const float *xr = dot ? x + t * xtok : 0;
            float *o = out + t * hp;
            for (i64 k = 0; k < h; k++) {
                const float sk = s[t * h + k];
                const float dk = D ? D[k] : 0.0f;
                float sum = 0.0f;
#if HAVE_V16
                if (p == 16) {
                    const __m512 v = ld16(w, t * hp + k * 16, bf);
                    if (dot) sum = _mm512_reduce_add_ps(_mm512_mul_ps(v, _mm512_loadu_ps(xr + k * 16)));
                    __m512 r = _mm512_mul_ps(v, _mm512_set1_ps(sk));
                    if (D) r = _mm512_fmadd_ps(_mm512_loadu_ps(ar + k * 16), _mm512_set1_ps(dk), r);
                    _mm512_storeu_ps(o + k * 16, r);
                } else
#endif
                {
                    for (i64 j = 0; j < p; j++) {
                        const float v = ld(w, t * hp + k * p + j, bf);
                        if (dot) sum += v * xr[k * p + j];
                        o[k * p + j] = D ? v * sk + dk * ar[k * p + j] : v * sk;
                    }
                }
                if (dot) dot[t * h + k] = sum;
            }
        }
}

// Forward state pass for batches [b0, b1) of c chunks, s rows of h*p:
//   s_out[k] = t_end[k] raw[k] + decay[k] s_out[k-1]            (state leaving chunk k)
//   sp[k] = exp(m_k) S_in[k] = pm[k] s_out[k-1], sp[0] = 0      (into the stacked operand's state rows)
INLINE void states_forward_impl(int bf, i64 b0, i64 b1, i64 c, i64 s, i64 h, i64 p, const void *raw,
                                const float *t_end, const float *decay, const float *pm, float *s_out, void *xs,
                                i64 block, i64 row_off) {
    const i64 hp = h * p, m = s * hp;
    for (i64 b = b0; b < b1; b++)
        for (i64 k = 0; k < c; k++) {
            const i64 nk = b * c + k;
            const float *te = t_end + nk * h, *dc = decay + nk * h, *pk = pm + nk * h;
            float *so = s_out + nk * m;
            const float *prev = k ? so - m : 0;
            const i64 d = nk * block + row_off;
            for (i64 r = 0; r < s; r++)
                for (i64 hh = 0; hh < h; hh++)
                    for (i64 j = 0; j < p; j++) {
                        const i64 e = r * hp + hh * p + j;
                        float v = ld(raw, nk * m + e, bf) * te[hh];
                        if (k) {
                            v += prev[e] * dc[hh];
                            st(xs, d + e, prev[e] * pk[hh], bf);
                        } else {
                            st(xs, d + e, 0.0f, bf);
                        }
                        so[e] = v;
                    }
        }
}

// Backward state pass for batches [b0, b1), chunks in reverse, with R[k] = dS_in[k] + decay[k] R[k+1]:
//   dS_in[k] = pm[k] dsp[k];  gpp[k] = sum dsp[k] sp[k] (per head)
//   gtot[k] = sum R[k+1] s_out[k];  gtt[k] = gtot[k] - decay[k] sum R[k+1] s_out[k-1]  (k < c - 1, else 0)
//   d raw[k] = t_end[k] R[k+1] (0 for the last chunk) into the stacked gradient's state rows.
// `rbuf` holds 2 * s * h * p floats of scratch per batch element: (batch, 2, s * h * p).
INLINE void states_backward_impl(int bf, i64 b0, i64 b1, i64 c, i64 s, i64 h, i64 p, const void *gsp,
                                 const void *xs, i64 block, i64 row_off, const float *pm, const float *decay,
                                 const float *t_end, const float *s_out, float *gpp, float *gtot, float *gtt,
                                 void *gws, i64 gblock, i64 grow_off, float *rbuf) {
    const i64 hp = h * p, m = s * hp;
    // Per-column sums (columns = h * p), reduced to heads once per chunk; per-head factors spread over columns.
    float acc_pp[hp], acc_t[hp], acc_r[hp], pk[hp], dc[hp], te[hp];
    for (i64 b = b0; b < b1; b++) {
        float *rn = rbuf + b * 2 * m, *rk = rn + m;  // R[k+1], R[k]
        for (i64 k = c - 1; k >= 0; k--) {
            const i64 nk = b * c + k;
            for (i64 hh = 0; hh < h; hh++)
                for (i64 j = 0; j < p; j++) {
                    pk[hh * p + j] = pm[nk * h + hh];
                    dc[hh * p + j] = decay[nk * h + hh];
                    te[hh * p + j] = t_end[nk * h + hh];
                }
            const float *so = s_out + nk * m;
            const float *sprev = k ? so - m : so;  // unused (times 0) for k = 0
            const float first = k ? 1.0f : 0.0f;
            for (i64 e = 0; e < hp; e++) acc_pp[e] = acc_t[e] = acc_r[e] = 0.0f;
            const i64 gi = nk * m, si = nk * block + row_off, go = nk * gblock + grow_off;
            if (k == c - 1) {
                for (i64 r = 0; r < s; r++)
                    for (i64 e = 0; e < hp; e++) {
                        const float g = ld(gsp, gi + r * hp + e, bf);
                        acc_pp[e] += g * ld(xs, si + r * hp + e, bf);
                        rk[r * hp + e] = g * pk[e];
                        st(gws, go + r * hp + e, 0.0f, bf);
                    }
            } else {
                for (i64 r = 0; r < s; r++)
                    for (i64 e = 0; e < hp; e++) {
                        const i64 o = r * hp + e;
                        const float g = ld(gsp, gi + o, bf);
                        const float rnext = rn[o];
                        acc_pp[e] += g * ld(xs, si + o, bf);
                        acc_t[e] += rnext * so[o];
                        acc_r[e] += rnext * sprev[o] * first;
                        rk[o] = g * pk[e] + rnext * dc[e];
                        st(gws, go + o, rnext * te[e], bf);
                    }
            }
            for (i64 hh = 0; hh < h; hh++) {
                float spp = 0.0f, st_ = 0.0f, sr = 0.0f;
                for (i64 j = 0; j < p; j++) {
                    spp += acc_pp[hh * p + j];
                    st_ += acc_t[hh * p + j];
                    sr += acc_r[hh * p + j];
                }
                gpp[nk * h + hh] = spp;
                gtot[nk * h + hh] = st_;
                gtt[nk * h + hh] = (k == c - 1 || k == 0) ? st_ : st_ - decay[nk * h + hh] * sr;
            }
            float *tmp = rn;
            rn = rk;
            rk = tmp;
        }
    }
}

// Exported entry points: one per (function, dtype), each specialised for the usual head sizes so
// that the compiler sees the p-long inner loops as whole vectors (p is the last argument of `args`).
#define EXPORT __attribute__((visibility("default")))
#define SPECIALISE(name, bf, args)           \
    if (p == 16) {                           \
        const i64 p_ = 16;                   \
        name##_impl(bf, args(p_));           \
    } else if (p == 32) {                    \
        const i64 p_ = 32;                   \
        name##_impl(bf, args(p_));           \
    } else if (p == 64) {                    \
        const i64 p_ = 64;                   \
        name##_impl(bf, args(p_));           \
    } else {                                 \
        name##_impl(bf, args(p));            \
    }
#define BOTH(name, params, args)                                                   \
    EXPORT void kinest_##name##_f32 params { SPECIALISE(name, 0, args) }           \
    EXPORT void kinest_##name##_bf16 params { SPECIALISE(name, 1, args) }

#define P_SCALE (i64 n0, i64 n1, i64 q, i64 h, i64 p, const float *src, i64 tok, const float *f, void *dst, i64 block, void *dense)
#define A_SCALE(P) n0, n1, q, h, P, src, tok, f, dst, block, dense
BOTH(scale_rows, P_SCALE, A_SCALE)

#define P_GIN                                                                                                  \
    (i64 n0, i64 n1, i64 q, i64 h, i64 p, const float *gy, i64 gtok, const float *y, const float *e, const float *D, \
     const float *x, i64 xtok, float *gee, float *gyx, void *gw, i64 block, void *dense)
#define A_GIN(P) n0, n1, q, h, P, gy, gtok, y, e, D, x, xtok, gee, gyx, gw, block, dense
BOTH(grad_in_rows, P_GIN, A_GIN)

#define P_SADD                                                                                                 \
    (i64 n0, i64 n1, i64 q, i64 h, i64 p, const void *w, const float *s, const float *D, const float *a, i64 atok, \
     float *out, const float *x, i64 xtok, float *dot)
#define A_SADD(P) n0, n1, q, h, P, w, s, D, a, atok, out, x, xtok, dot
BOTH(scale_add_rows, P_SADD, A_SADD)

#define P_SF                                                                                                      \
    (i64 b0, i64 b1, i64 c, i64 s, i64 h, i64 p, const void *raw, const float *t_end, const float *decay, const float *pm, \
     float *s_out, void *xs, i64 block, i64 row_off)
#define A_SF(P) b0, b1, c, s, h, P, raw, t_end, decay, pm, s_out, xs, block, row_off
BOTH(states_forward, P_SF, A_SF)

#define P_SB                                                                                                     \
    (i64 b0, i64 b1, i64 c, i64 s, i64 h, i64 p, const void *gsp, const void *xs, i64 block, i64 row_off,              \
     const float *pm, const float *decay, const float *t_end, const float *s_out, float *gpp, float *gtot, float *gtt, \
     void *gws, i64 gblock, i64 grow_off, float *rbuf)
#define A_SB(P) b0, b1, c, s, h, P, gsp, xs, block, row_off, pm, decay, t_end, s_out, gpp, gtot, gtt, gws, gblock, grow_off, rbuf
BOTH(states_backward, P_SB, A_SB)

EXPORT int kinest_ssd_fused_version(void) { return 1; }
