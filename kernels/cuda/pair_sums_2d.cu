// Same-label and different-label sums of pairwise distances of 2-D points (i < j).
//
// Points are sorted by label; ends[i] is the end (exclusive) of row i's label run, so
// the same-label partners of i are the columns (i, ends[i]) and the different-label
// ones [ends[i], n). Each block takes BLOCK rows (one per thread) and a chunk of
// columns, which it streams through shared memory BLOCK points at a time. Per pair:
// the distance (T arithmetic: float for float32 input, double for float64), the square
// root, and a predicated add to the same or different partial sum. Partial sums are
// kept in T for one tile, then added to double accumulators; a block reduces its
// threads' doubles (warp shuffles, then shared memory) and adds them to out[0..1]
// with one double atomicAdd each.
//
// Launch: blockDim.x == BLOCK; grid = (ceil(n / BLOCK), ceil(n / (BLOCK * tiles_per_block))).

#define BLOCK 256

template <typename T>
__device__ __forceinline__ T root(T v);
template <>
__device__ __forceinline__ float root<float>(float v) { return sqrtf(v); }
template <>
__device__ __forceinline__ double root<double>(double v) { return sqrt(v); }

__device__ __forceinline__ double warp_sum(double v) {
    for (int offset = 16; offset > 0; offset >>= 1)
        v += __shfl_down_sync(0xffffffffu, v, offset);
    return v;
}

template <typename T>
__global__ void __launch_bounds__(BLOCK)
pair_sums_2d(const T* __restrict__ x0, const T* __restrict__ x1,
             const long long* __restrict__ ends, long long n,
             int tiles_per_block, double* __restrict__ out)
{
    __shared__ T sx[BLOCK];
    __shared__ T sy[BLOCK];
    __shared__ double red[2][BLOCK / 32];

    const long long row0 = (long long)blockIdx.x * BLOCK;
    const long long col0 = (long long)blockIdx.y * BLOCK * tiles_per_block;
    const long long col1 = min(n, col0 + (long long)BLOCK * tiles_per_block);
    if (col1 <= row0 + 1) return;  // the whole chunk lies on or below the diagonal

    const long long i = row0 + threadIdx.x;
    const bool valid = i < n;
    const long long me = valid ? i : n;          // rows past the end pair with nothing
    const long long end = valid ? ends[i] : n + 1;
    const T xi = valid ? x0[i] : T(0);
    const T yi = valid ? x1[i] : T(0);

    double same = 0.0, diff = 0.0;
    for (long long c0 = max(col0, row0); c0 < col1; c0 += BLOCK) {
        const long long c = c0 + threadIdx.x;
        sx[threadIdx.x] = c < n ? x0[c] : T(0);
        sy[threadIdx.x] = c < n ? x1[c] : T(0);
        __syncthreads();
        const int m = (int)min((long long)BLOCK, col1 - c0);
        T ps = T(0), pd = T(0);
        #pragma unroll 8
        for (int k = 0; k < m; ++k) {
            const long long j = c0 + k;
            const T dx = sx[k] - xi;
            const T dy = sy[k] - yi;
            const T d = root<T>(dx * dx + dy * dy);
            ps += (j > me && j < end) ? d : T(0);
            pd += (j >= end) ? d : T(0);
        }
        same += (double)ps;
        diff += (double)pd;
        __syncthreads();
    }

    same = warp_sum(same);
    diff = warp_sum(diff);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) { red[0][warp] = same; red[1][warp] = diff; }
    __syncthreads();
    if (warp == 0) {
        same = lane < BLOCK / 32 ? red[0][lane] : 0.0;
        diff = lane < BLOCK / 32 ? red[1][lane] : 0.0;
        same = warp_sum(same);
        diff = warp_sum(diff);
        if (lane == 0) {
            atomicAdd(out, same);
            atomicAdd(out + 1, diff);
        }
    }
}
