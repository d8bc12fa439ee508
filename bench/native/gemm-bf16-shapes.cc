// Standalone GFLOPS of the bf16 and float32 GEMM tiles (native/gemm_bf16.cc, native/gemm.cc) on the full-catalogue
// kernel's three product shapes (168 x 256 x 64, 256 x 64 x 168, 168 x 64 x 256), one thread, CPU time.
//   S=native; g++ -std=c++17 -O3 -march=native -pthread -I$S bench/native/gemm-bf16-shapes.cc $S/gemm.cc
//     $S/gemm_bf16.cc $S/pool.cc -o build/gemm-shapes && build/gemm-shapes
#include "gemm_bf16.h"
#include "gemm.h"
#include <chrono>
#include <cstdio>
#include <vector>
#include <time.h>
using namespace tl;
static double cpu(){timespec ts; clock_gettime(CLOCK_THREAD_CPUTIME_ID,&ts); return ts.tv_sec+ts.tv_nsec*1e-9;}
int main(){
  struct Sh{int M,N,K;} shapes[]={{168,256,64},{256,64,168},{168,64,256}};
  for(auto sh: shapes){
    int M=sh.M,N=sh.N,K=sh.K;
    std::vector<float> A(M*K,0.5f),B(K*N,0.25f),C(M*N);
    std::vector<uint16_t> A16(packed_a_bf16_size(M,K)),B16(packed_b_bf16_size(K,N));
    std::vector<float> Af(packed_a_size(M,K)),Bf(packed_b_size(K,N));
    pack_a_bf16(M,K,A.data(),K,1,A16.data()); pack_b_bf16(K,N,B.data(),N,1,B16.data());
    pack_a(M,K,A.data(),K,1,Af.data()); pack_b(K,N,B.data(),N,1,Bf.data());
    int it=4000; double t0=cpu();
    for(int i=0;i<it;i++) macro_kernel_bf16(M,N,K,A16.data(),B16.data(),b_bf16_panel_stride(K),C.data(),N,1,0);
    double t1=cpu();
    for(int i=0;i<it;i++) macro_kernel(M,N,K,Af.data(),Bf.data(),K*NR,C.data(),N,1,0,{});
    double t2=cpu();
    double fl=2.0*M*N*K*it;
    // packing costs
    std::vector<float> G(M*(N+16),0.3f);
    double t3=cpu();
    for(int i=0;i<it;i++) pack_a_bf16(M,K,A.data(),K,1,A16.data());
    double t4=cpu();
    for(int i=0;i<it;i++) pack_a_bf16(K,M,A.data(),1,K,A16.data());
    double t5=cpu();
    printf("M%d N%d K%d: bf16 %.0f GFLOPS, fp32 %.0f GFLOPS; pack_a cs1 %.2f us, rs1 %.2f us\n",M,N,K,fl/(t1-t0)/1e9,fl/(t2-t1)/1e9,(t4-t3)/it*1e6,(t5-t4)/it*1e6);
  }
}
