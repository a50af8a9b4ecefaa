// Tests of the layer-list syntax and its building into a Graph: the registry's kinds and help,
// nested blocks in the splitter, every syntax error and every kind's shape rule naming the
// network, the layer and what to write, attn's score budget, parameter names, fused
// activations, flattens and the conditional label.
#include "vae/architecture.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <span>
#include <sstream>
#include <string>

#include "core/error.hpp"
#include "nn/context.hpp"
#include "nn/layer.hpp"
#include "nn/linear.hpp"

namespace {

using vd::Shape;

std::string config_error(const std::string& text) {
  try {
    vd::parse_layers(text, "encoder");
  } catch (const vd::ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Architecture, EveryKindHasSyntaxHelpAndAPyTorchEquivalent) {
  std::set<std::string> seen;
  for (const vd::LayerKind& k : vd::layer_kinds()) {
    EXPECT_TRUE(seen.insert(k.keyword).second) << "keyword registered twice: " << k.keyword;
    EXPECT_EQ(k.syntax.rfind(k.keyword, 0), 0u) << k.syntax;
    EXPECT_FALSE(k.what.empty()) << k.keyword;
    EXPECT_FALSE(k.torch.empty()) << k.keyword;
    EXPECT_TRUE(k.check && k.build) << k.keyword;
    EXPECT_EQ(vd::find_layer_kind(k.keyword), &k);
    EXPECT_NE(vd::layer_syntax_help().find("'" + k.syntax + "'"), std::string::npos);
  }
  EXPECT_EQ(vd::find_layer_kind("nope"), nullptr);
  const std::string help = vd::layer_syntax_help();
  EXPECT_EQ(help.rfind("layers are 'fc N', 'conv C kK [sS] [pP]', ", 0), 0u) << help;
  EXPECT_EQ(help.substr(help.size() - 21), ", separated by commas") << help;
}

TEST(Architecture, TheManualListsEveryKind) {
  std::ifstream in(std::string(VD_SOURCE_DIR) + "/docs/layers.md");
  std::stringstream text;
  text << in.rdbuf();
  ASSERT_FALSE(text.str().empty()) << "docs/layers.md not found";
  for (const vd::LayerKind& k : vd::layer_kinds())
    EXPECT_NE(text.str().find("`" + k.syntax + "`"), std::string::npos)
        << "docs/layers.md's table lacks `" << k.syntax << "`";
}

TEST(Architecture, SplitterKeepsNestedBlocksWhole) {
  const auto l =
      vd::split_layer_list("conv 8 k3 p1, res(relu, blk(fc 3, relu) x2, fc 4) k7 , relu");
  ASSERT_EQ(l.size(), 3u);
  EXPECT_EQ(l[0].keyword, "conv");
  EXPECT_EQ(l[0].args, (std::vector<std::string>{"8", "k3", "p1"}));
  EXPECT_FALSE(l[0].has_body);
  EXPECT_EQ(l[1].keyword, "res");
  EXPECT_TRUE(l[1].has_body);
  EXPECT_EQ(l[1].args, (std::vector<std::string>{"k7"}));
  EXPECT_EQ(l[1].text, "res(relu, blk(fc 3, relu) x2, fc 4) k7");
  ASSERT_EQ(l[1].body.size(), 3u);
  EXPECT_EQ(l[1].body[1].keyword, "blk");
  EXPECT_EQ(l[1].body[1].args, (std::vector<std::string>{"x2"}));
  ASSERT_EQ(l[1].body[1].body.size(), 2u);
  EXPECT_EQ(l[1].body[1].body[0].text, "fc 3");
  EXPECT_EQ(l[2].keyword, "relu");
  EXPECT_TRUE(vd::split_layer_list("  ").empty());
  EXPECT_EQ(vd::split_layer_list("fc 4, relu,").size(), 2u);  // a trailing comma is allowed
}

TEST(Architecture, SyntaxErrorsNameTheNetworkTheLayerAndTheSyntax) {
  const std::string help = vd::layer_syntax_help();
  const std::pair<std::string, std::string> cases[] = {
      {"fc 400, relu, foo 3", "encoder: layer 'foo 3': unknown layer 'foo'; " + help},
      {"fc", "encoder: layer 'fc': 'fc' takes one positive width; " + help},
      {"fc 0", "'fc' takes one positive width"},
      {"fc 4 5", "'fc' takes one positive width"},
      {"relu 2", "encoder: layer 'relu 2': 'relu' takes no arguments"},
      {"conv 8", "'conv' needs positive output channels and a kernel, e.g. 'conv 32 k4 s2 p1'"},
      {"conv 8 s2", "'conv' needs a kernel size, e.g. k4"},
      {"conv 8 k3 q1", "'q1' is not a valid setting here"},
      {"conv 8 k3 op1", "'op1' is not a valid setting here"},
      {"conv 8 kx", "cannot read 'kx'"},
      {"reshape 4x0", "'reshape' takes a shape of positive sizes: CxHxW (e.g. 64x7x7)"},
      {"reshape 64", "'reshape' takes a shape of positive sizes"},
      {"fc 4,, relu", "encoder: empty layer (two commas in a row?); " + help},
      {"fc(relu) 4", "'fc' takes one positive width"},
      {"fc 4, relu)", "encoder: ')' at character 11 closes nothing: 'fc 4, relu)' <-"},
      {"res(fc 4, relu", "encoder: a '(' is never closed: 'res(fc 4, relu' needs 1 more ')'"},
      {"my block(fc 4)",
       "a block is written 'name(layer, layer, ...) [settings]'; 'my block' before '(' is more "
       "than a name"},
      {"conv 8 k1x2x3x4", "'k1x2x3x4' gives 4 axes; data have at most 3 (D x H x W)"},
      {"silu 1", "encoder: layer 'silu 1': 'silu' takes no arguments; write 'silu'"},
      {"gelu tanh", "the tanh approximation is not offered: write 'gelu'"},
      {"leakyrelu", "'leakyrelu' takes one slope, e.g. 'leakyrelu 0.2'"},
      {"leakyrelu steep", "'steep' is not one: write e.g. 'leakyrelu 0.2'"},
      {"up 1", "'up' takes one integer factor of at least 2, e.g. 'up 2'"},
      {"gn", "'gn' takes a number of groups and an optional eps, e.g. 'gn 32' or 'gn 32 1e-5'"},
      {"gn 32 -1", "'gn': the eps '-1' is not a positive number"},
      {"attn(relu)", "'attn' takes no layers in parentheses; write 'attn [gG]'"},
      {"attn g1 g2", "'attn' takes at most one setting, the group count, e.g. 'attn g32'"},
      {"attn 32", "'32' is not a group count; 'attn' takes 'gG' with G >= 1 dividing the channels"},
      {"res(relu) g4", "'res(...)' takes its layers inside the parentheses and nothing after"},
      {"res()", "'res()' needs at least one layer inside"},
      {"res 64 x16",
       "'res' takes output channels and optional groups, e.g. 'res 64' or 'res 64 g16', or "
       "layers of its own, e.g. 'res(gn 32, silu, conv 64 k3 p1)'"},
      // A body's layers are checked as a list of their own, named by the network and the block.
      {"res(fc 4, foo)", "encoder: in 'res(fc 4, foo)': layer 'foo': unknown layer 'foo'; " + help},
      {"res(res(silu 1))",
       "encoder: in 'res(res(silu 1))': in 'res(silu 1)': layer 'silu 1': 'silu' takes no "
       "arguments; write 'silu'; " +
           help},
  };
  for (const auto& [text, want] : cases) {
    const std::string got = config_error(text);
    EXPECT_NE(got.find(want), std::string::npos) << "'" << text << "' gave: " << got;
  }
}

TEST(Architecture, BuildNamesLayersFusesActivationsAndFlattens) {
  vd::ParamStore store;
  vd::Graph g{Shape{1, 8, 8}};
  vd::build_layers(
      g, store, "decoder",
      vd::parse_layers("conv 4 k3 p1, relu, relu, conv 4 k3 s2 p1, fc 6, relu, fc 5", "decoder"),
      true, "decoder");
  std::vector<std::string> names, what;
  for (const auto& node : g.nodes()) {
    names.push_back(node.name);
    what.push_back(node.layer->describe());
  }
  // The second relu has no layer before it to fuse into; the flatten before the first fc
  // counts with the other kinds without parameters; the last fc is "out".
  EXPECT_EQ(names, (std::vector<std::string>{"decoder.conv1", "decoder.relu1", "decoder.conv2",
                                             "decoder.flatten2", "decoder.fc1", "decoder.out"}));
  EXPECT_EQ(what, (std::vector<std::string>{"conv 4 k3 s1 p1 + relu", "relu", "conv 4 k3 s2 p1",
                                            "flatten", "fc 6 + relu", "fc 5"}));
  EXPECT_EQ(store.find("decoder.fc1.weight").shape, (std::vector<int64_t>{6, 64}));
  EXPECT_EQ(g.out_shape(), (Shape{5, 1, 1}));
}

TEST(Architecture, TheLabelIsConcatenatedBeforeTheFirstFcOnly) {
  vd::ParamStore store;
  vd::Graph g{std::vector<Shape>{Shape{6, 1, 1}, Shape{3, 1, 1}}};
  vd::build_layers(g, store, "encoder", vd::parse_layers("fc 5, relu, fc 4", "encoder"), false,
                   "encoder", 1);
  ASSERT_EQ(g.nodes().size(), 3u);
  EXPECT_EQ(g.nodes()[0].op, vd::Graph::Op::Concat);
  EXPECT_EQ(g.nodes()[0].from, (std::vector<vd::Graph::Value>{0, 1}));
  EXPECT_EQ(store.find("encoder.fc1.weight").shape, (std::vector<int64_t>{5, 9}));
  EXPECT_EQ(store.find("encoder.fc2.weight").shape, (std::vector<int64_t>{4, 5}));
  // Without an fc layer the label has nowhere to go.
  vd::Graph conv{std::vector<Shape>{Shape{1, 4, 4}, Shape{3, 1, 1}}};
  try {
    vd::build_layers(conv, store, "e2", vd::parse_layers("conv 2 k3", "e2"), false, "encoder", 1);
    ADD_FAILURE() << "no error";
  } catch (const vd::ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "encoder has no fc layer; a conditional model (--conditional) feeds the one-hot "
                 "label into the first fc layer of the encoder and of the decoder");
  }
}

TEST(Architecture, ALayerThatDoesNotFitNamesItselfAndItsInput) {
  vd::ParamStore store;
  vd::Graph g{Shape{1, 4, 4}};
  try {
    vd::build_layers(g, store, "encoder", vd::parse_layers("conv 2 k5", "encoder"), false,
                     "encoder");
    ADD_FAILURE() << "no error";
  } catch (const vd::ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "encoder: layer 'conv 2 k5' does not fit its input 1x4x4: conv layer "
                 "encoder.conv1: a 5x5 kernel does not fit the input 1x4x4");
  }
}

// The message of building `text` on input `in` as the encoder ("" when it builds).
std::string fit_error(const Shape& in, const std::string& text) {
  vd::ParamStore store;
  vd::Graph g{in};
  try {
    vd::build_layers(g, store, "encoder", vd::parse_layers(text, "encoder"), false, "encoder");
  } catch (const vd::ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Architecture, EachKindsShapeRuleNamesTheLayerAndTheFix) {
  struct Case {
    Shape in;
    std::string text, rule;  // rule: the layer's message after "does not fit its input ...: "
  };
  const Case cases[] = {
      {Shape{16, 1, 1}, "conv 2 k1",
       "conv layer encoder.conv1 needs 1-D, 2-D or 3-D data (C x L, C x H x W or C x D x H x W) "
       "but gets a flat vector of 16 values; put a 'reshape CxHxW' (or CxL, CxDxHxW) before it"},
      {Shape{1, 4, 4}, "conv 2 k3x3x3",
       "conv layer encoder.conv1: a 3-D kernel on 2-D data 1x4x4; write k3 or k3x3"},
      {Shape::signal(1, 8), "conv 2 k9",
       "conv layer encoder.conv1: a kernel of 9 does not fit the input 1x8"},
      {Shape{1, 4, 4}, "convt 2 k3 op1",
       "convt layer encoder.convt1: the output padding must be smaller than the stride"},
      {Shape{1, 4, 4}, "reshape 2x3x3",
       "reshape layer encoder.reshape1 cannot turn 1x4x4 (16 values) into 2x3x3 (18 values)"},
      {Shape{1, 2, 2}, "up 40000",
       "up layer encoder.up1 would turn 1x2x2 into 1x80000x80000, too large to index"},
      {Shape{3, 4, 4}, "gn 2",
       "gn layer encoder.gn1: 2 groups do not divide its 3 channels; use a number of groups "
       "that divides 3"},
      {Shape{16, 1, 1}, "attn",
       "attn layer encoder.attn1 needs an image input (C x H x W) but gets a flat vector of 16 "
       "values; put a 'reshape CxHxW' before it"},
      {Shape{6, 4, 4}, "attn g4",
       "attn layer encoder.attn1: 4 groups do not divide its 6 channels (GroupNorm needs "
       "C % G == 0); write 'attn g3' or another divisor of 6"},
      {Shape{16, 1, 1}, "res 8", "res layer encoder.res1 needs an image input (C x H x W), got 16"},
      {Shape{1, 4, 4}, "res(conv 2 k3 s2 p1)",
       "the body of residual block encoder.res1 turns 1x4x4 into 2x2x2; a residual block keeps "
       "the map size (change it outside the block, e.g. with 'conv C k3 s2 p1' or 'up 2')"},
  };
  for (const Case& c : cases)
    EXPECT_EQ(fit_error(c.in, c.text), "encoder: layer '" + c.text + "' does not fit its input " +
                                           c.in.text() + ": " + c.rule);
  // A layer of a block's body names the block and its own path.
  EXPECT_EQ(fit_error(Shape{1, 4, 4}, "res(conv 2 k5)"),
            "encoder: in 'res(conv 2 k5)': layer 'conv 2 k5' does not fit its input 1x4x4: conv "
            "layer encoder.res1.conv1: a 5x5 kernel does not fit the input 1x4x4");
}

// Checked when a batch size is prepared, not when the layer is built: the scores grow with
// the batch.
TEST(Architecture, AttentionOverItsScoreBudgetSaysWhereToPutIt) {
  vd::ParamStore store;
  vd::Graph g{Shape{1, 64, 64}};
  vd::build_layers(g, store, "encoder", vd::parse_layers("attn g1", "encoder"), false, "encoder");
  vd::Context ctx;
  const vd::Layout src = vd::plain_layout(17, Shape{1, 64, 64});
  try {
    g.prepare(ctx, 17, std::span<const vd::Layout>(&src, 1));
    ADD_FAILURE() << "no error";
  } catch (const vd::ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "attn layer encoder.attn1 on a 1x64x64 map needs 4096 x 4096 scores per sample, "
                  "2 such matrices (the probabilities and their gradient): 2.3 GB for a batch of "
                  "17, over the budget of 2.1 GB (Attention::kScoreBudgetBytes); put it after "
                  "more down-sampling or use a smaller batch"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
