// Standalone timing of one full-catalogue softmax call (native/full_softmax.cc) at a given shape, outside Node:
// R rows, N items, d = 64, random q/e/targets; BF16=1 asks for bf16 products; TOWERLAB_THREADS sets the threads.
// Used for the figures docs/sequential.md calls "standalone harness" (one command, the two lines below joined) (e.g. -march=haswell for an AVX2-only build).
//   S=native; g++ -std=c++17 -O3 -march=native -fno-math-errno -fno-trapping-math -pthread -I$S
//     bench/native/full-softmax-step.cc $S/full_softmax.cc $S/gemm.cc $S/gemm_bf16.cc $S/pool.cc -o build/fs-step
//   BF16=1 TOWERLAB_THREADS=2 build/fs-step 731 12101 40
#include "full_softmax.h"
#include "pool.h"
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>
using namespace tl;
int main(int argc,char**argv){
  int64_t R=argc>1?atol(argv[1]):731, N=argc>2?atol(argv[2]):12101, d=64; int iters=argc>3?atoi(argv[3]):40;
  std::mt19937 g(1); std::normal_distribution<float> nd(0,0.3f);
  std::vector<float> q(R*d), e(N*d), dq(R*d), de(N*d);
  for (auto& x : q) x = nd(g) * 3;
  for (auto& x : e) x = nd(g);
  std::vector<int32_t> t(R); for(auto&x:t)x=g()%N;
  FullSoftmaxIn in; in.bf16 = getenv("BF16") && atoi(getenv("BF16")); in.q=q.data(); in.e=e.data(); in.R=R; in.N=N; in.d=d; in.target=t.data(); in.dq=dq.data(); in.de=de.data();
  double L=full_softmax(in);
  auto t0=std::chrono::steady_clock::now();
  for(int i=0;i<iters;i++) L=full_softmax(in);
  double s=std::chrono::duration<double>(std::chrono::steady_clock::now()-t0).count()/iters;
  double fl=6.0*R*N*d;
  printf("R=%ld N=%ld threads=%d: %.2f ms/call, %.0f GFLOPS, epoch(175 steps) %.2f s, loss %.5f\n",R,N,threads(),s*1e3,fl/s/1e9,s*175,L);
}
