{
  "targets": [
    {
      "target_name": "towerlab",
      "sources": [
        "native/addon.cc",
        "native/pool.cc",
        "native/gemm.cc",
        "native/gemm_bf16.cc",
        "native/contrastive.cc",
        "native/full_softmax.cc",
        "native/layers.cc",
        "native/seq_layers.cc",
        "native/rows.cc",
        "native/history_pool.cc",
        "native/optim.cc",
        "native/topk.cc",
        "native/ivf.cc"
      ],
      "defines": ["NAPI_VERSION=8"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": [
        "-std=c++17",
        "-O3",
        "-march=native",
        "-fno-math-errno",
        "-fno-trapping-math",
        "-fexceptions",
        "-fvisibility=hidden",
        "-Wall",
        "-Wno-unused-function"
      ],
      "ldflags": ["-pthread"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "OTHER_CPLUSPLUSFLAGS": ["-std=c++17", "-O3", "-march=native", "-fno-math-errno"]
      }
    }
  ]
}
