// Runs an EPContext model (written by `xdna-ep compile`) with only ONNX Runtime's
// C++ API and the XDNA plugin library: no Python anywhere.
//
//   run_epcontext MODEL_ctx.onnx /path/to/libxdna_ep_provider.so INPUT.f32 OUTPUT.f32
//
// The model's first input must have a fixed shape; INPUT.f32 holds its float32
// values (raw, little-endian); OUTPUT.f32 receives the first output's values.
// Build (see docs/EPCONTEXT.md):
//   g++ -std=c++17 -I<ORT include dir> run_epcontext.cpp -o run_epcontext -L<dir> -lonnxruntime
#include <onnxruntime_cxx_api.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <unordered_map>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: " << argv[0] << " MODEL_ctx.onnx LIBRARY.so INPUT.f32 OUTPUT.f32\n";
    return 2;
  }
  try {
    Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "run_epcontext");
    env.RegisterExecutionProviderLibrary("XDNAExecutionProvider", argv[2]);

    std::vector<Ort::ConstEpDevice> xdna;
    for (const Ort::ConstEpDevice& d : env.GetEpDevices())
      if (std::string(d.EpName()) == "XDNAExecutionProvider") xdna.push_back(d);
    if (xdna.empty()) {
      std::cerr << "no XDNAExecutionProvider device after registering " << argv[2] << "\n";
      return 1;
    }
    std::cout << "device: XDNAExecutionProvider backend=" << xdna[0].EpMetadata().GetValue("backend")
              << "\n";

    Ort::SessionOptions so;
    std::unordered_map<std::string, std::string> options{{"device", "emulator"}};
    so.AppendExecutionProvider_V2(env, xdna, options);
    Ort::Session session(env, argv[1], so);

    Ort::AllocatorWithDefaultOptions alloc;
    const std::string in_name = session.GetInputNameAllocated(0, alloc).get();
    const std::string out_name = session.GetOutputNameAllocated(0, alloc).get();
    std::vector<int64_t> shape = session.GetInputTypeInfo(0).GetTensorTypeAndShapeInfo().GetShape();
    size_t count = 1;
    for (int64_t d : shape) {
      if (d < 0) {
        std::cerr << "input " << in_name << " has a symbolic dimension: not supported here\n";
        return 1;
      }
      count *= static_cast<size_t>(d);
    }
    std::vector<float> input(count);
    std::ifstream f(argv[3], std::ios::binary);
    if (!f.read(reinterpret_cast<char*>(input.data()), static_cast<std::streamsize>(count * sizeof(float)))) {
      std::cerr << "cannot read " << count << " float32 values from " << argv[3] << "\n";
      return 1;
    }
    Ort::MemoryInfo mem = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
    Ort::Value x = Ort::Value::CreateTensor<float>(mem, input.data(), input.size(), shape.data(), shape.size());
    const char* in_names[] = {in_name.c_str()};
    const char* out_names[] = {out_name.c_str()};
    std::vector<Ort::Value> out = session.Run(Ort::RunOptions{nullptr}, in_names, &x, 1, out_names, 1);

    const auto info = out[0].GetTensorTypeAndShapeInfo();
    const float* y = out[0].GetTensorData<float>();
    std::ofstream o(argv[4], std::ios::binary);
    o.write(reinterpret_cast<const char*>(y), static_cast<std::streamsize>(info.GetElementCount() * sizeof(float)));
    std::cout << "output " << out_name << ": " << info.GetElementCount() << " values\n";
  } catch (const Ort::Exception& e) {
    std::cerr << "ONNX Runtime error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
