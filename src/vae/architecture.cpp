// Parsing of the layer-list syntax and its construction into nn layers.
#include "vae/architecture.hpp"

#include <charconv>
#include <memory>
#include <sstream>

#include "core/error.hpp"
#include "nn/concat.hpp"
#include "nn/linear.hpp"

namespace vd {

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

bool to_int(const std::string& s, int& v) {
  const auto res = std::from_chars(s.data(), s.data() + s.size(), v);
  return res.ec == std::errc() && res.ptr == s.data() + s.size() && !s.empty();
}

const char* kSyntax =
    "layers are 'fc N', 'conv C kK [sS] [pP]', 'convt C kK [sS] [pP] [opO]', 'relu', "
    "'flatten' or 'reshape CxHxW', separated by commas";

LayerSpec parse_one(const std::string& text, const std::string& what) {
  std::istringstream in(text);
  std::vector<std::string> w;
  for (std::string t; in >> t;) w.push_back(t);
  LayerSpec l;
  l.text = text;
  const auto bad = [&](const std::string& why) {
    return ConfigError(what + ": layer '" + text + "': " + why + "; " + kSyntax);
  };
  if (w.empty()) throw bad("empty layer");
  const std::string& k = w[0];
  if (k == "relu" || k == "flatten") {
    if (w.size() != 1) throw bad("'" + k + "' takes no arguments");
    l.kind = k == "relu" ? LayerSpec::Kind::Relu : LayerSpec::Kind::Flatten;
  } else if (k == "fc") {
    if (w.size() != 2 || !to_int(w[1], l.units) || l.units < 1)
      throw bad("'fc' takes one positive width");
    l.kind = LayerSpec::Kind::Fc;
  } else if (k == "reshape") {
    int c = 0, h = 0, wd = 0;
    char x1 = 0, x2 = 0;
    std::istringstream dims(w.size() == 2 ? w[1] : "");
    if (w.size() != 2 || !(dims >> c >> x1 >> h >> x2 >> wd) || x1 != 'x' || x2 != 'x' ||
        !dims.eof() || c < 1 || h < 1 || wd < 1)
      throw bad("'reshape' takes a shape CxHxW of positive sizes, e.g. 64x7x7");
    l.kind = LayerSpec::Kind::Reshape;
    l.shape = Shape{c, h, wd};
  } else if (k == "conv" || k == "convt") {
    l.kind = k == "conv" ? LayerSpec::Kind::Conv : LayerSpec::Kind::ConvT;
    l.conv.transposed = k == "convt";
    if (w.size() < 3 || !to_int(w[1], l.conv.out_channels) || l.conv.out_channels < 1)
      throw bad("'" + k + "' needs positive output channels and a kernel, e.g. '" + k +
                " 32 k4 s2 p1'");
    bool kernel = false;
    for (size_t i = 2; i < w.size(); ++i) {
      const std::string& a = w[i];
      const bool op = a.rfind("op", 0) == 0;
      const std::string num = a.substr(op ? 2 : 1);
      int v = 0;
      if (!to_int(num, v)) throw bad("cannot read '" + a + "'");
      if (op && l.conv.transposed && v >= 0) {
        l.conv.output_pad = v;
      } else if (a[0] == 'k' && v >= 1) {
        l.conv.kernel = v;
        kernel = true;
      } else if (a[0] == 's' && v >= 1) {
        l.conv.stride = v;
      } else if (a[0] == 'p' && v >= 0) {
        l.conv.pad = v;
      } else {
        throw bad("'" + a + "' is not a valid setting here");
      }
    }
    if (!kernel) throw bad("'" + k + "' needs a kernel size, e.g. k4");
  } else {
    throw bad("unknown layer '" + k + "'");
  }
  return l;
}

}  // namespace

std::vector<LayerSpec> parse_layers(const std::string& text, const std::string& what) {
  std::vector<LayerSpec> out;
  if (trim(text).empty()) return out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) out.push_back(parse_one(trim(item), what));
  return out;
}

std::string mlp_encoder_spec(const std::vector<int>& hidden) {
  std::string s;
  for (int h : hidden) s += (s.empty() ? "" : ", ") + ("fc " + std::to_string(h)) + ", relu";
  return s;
}

std::string mlp_decoder_spec(const std::vector<int>& hidden, int64_t data_size) {
  std::string s;
  for (size_t i = hidden.size(); i-- > 0;) s += "fc " + std::to_string(hidden[i]) + ", relu, ";
  return s + "fc " + std::to_string(data_size);
}

void build_layers(Sequential& seq, ParamStore& store, const std::string& prefix,
                  const std::vector<LayerSpec>& specs, bool last_is_out, const std::string& what,
                  int classes, const float* const* condition) {
  size_t last_param = specs.size();
  for (size_t i = 0; i < specs.size(); ++i)
    if (specs[i].kind == LayerSpec::Kind::Fc || specs[i].kind == LayerSpec::Kind::Conv ||
        specs[i].kind == LayerSpec::Kind::ConvT)
      last_param = i;
  int fc = 0, conv = 0, convt = 0, other = 0;
  bool conditioned = classes == 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    const LayerSpec& l = specs[i];
    const Shape in = seq.out_shape();
    const bool fuse = i + 1 < specs.size() && specs[i + 1].kind == LayerSpec::Kind::Relu;
    const Activation act = fuse ? Activation::ReLU : Activation::None;
    const auto param_name = [&](const char* kind, int& count) {
      ++count;
      return prefix + "." + (last_is_out && i == last_param ? "out" : kind + std::to_string(count));
    };
    try {
      switch (l.kind) {
        case LayerSpec::Kind::Fc:
          if (!in.flat())  // PyTorch's flatten order is the plain layout's order
            seq.add(std::make_unique<Reshape>(prefix + ".flatten" + std::to_string(++other), in,
                                              Shape{static_cast<int>(in.size()), 1, 1}));
          if (!conditioned) {
            seq.add(std::make_unique<ConcatCondition>(prefix + ".label", seq.out_shape(), classes,
                                                      condition));
            conditioned = true;
          }
          seq.add(
              std::make_unique<Linear>(store, param_name("fc", fc), seq.out_shape(), l.units, act));
          break;
        case LayerSpec::Kind::Conv:
          seq.add(std::make_unique<Conv2d>(store, param_name("conv", conv), in, l.conv, act));
          break;
        case LayerSpec::Kind::ConvT:
          seq.add(std::make_unique<Conv2d>(store, param_name("convt", convt), in, l.conv, act));
          break;
        case LayerSpec::Kind::Relu: {
          const bool fused = i > 0 && (specs[i - 1].kind == LayerSpec::Kind::Fc ||
                                       specs[i - 1].kind == LayerSpec::Kind::Conv ||
                                       specs[i - 1].kind == LayerSpec::Kind::ConvT);
          if (!fused)
            seq.add(std::make_unique<Relu>(prefix + ".relu" + std::to_string(++other), in));
          break;
        }
        case LayerSpec::Kind::Flatten:
          seq.add(std::make_unique<Reshape>(prefix + ".flatten" + std::to_string(++other), in,
                                            Shape{static_cast<int>(in.size()), 1, 1}));
          break;
        case LayerSpec::Kind::Reshape:
          seq.add(std::make_unique<Reshape>(prefix + ".reshape" + std::to_string(++other), in,
                                            l.shape));
          break;
      }
    } catch (const ShapeError& e) {
      std::string msg = e.what();
      // Drop the file:line prefix VD_CHECK adds: this is the user's config, not our bug.
      const auto cut = msg.find(": ");
      if (cut != std::string::npos && msg.substr(0, cut).find(".cpp:") != std::string::npos)
        msg = msg.substr(cut + 2);
      throw ConfigError(what + ": layer '" + l.text + "' does not fit its input " + in.text() +
                        ": " + msg);
    }
  }
  if (!conditioned)
    throw ConfigError(what +
                      " has no fc layer; a conditional model (--conditional) feeds the "
                      "one-hot label into the first fc layer of the encoder and of the decoder");
}

}  // namespace vd
