// Tests of the layer-list syntax and its building into a Graph: the registry's kinds and help,
// nested blocks in the splitter, every syntax error naming the network, the layer and what to
// write, parameter names, fused activations, flattens and the conditional label.
#include "vae/architecture.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "core/error.hpp"
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
      {"my block(fc 4)", "'my block' before '(' is more than a name"},
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
  EXPECT_THROW(
      vd::build_layers(conv, store, "e2", vd::parse_layers("conv 2 k3", "e2"), false, "encoder", 1),
      vd::ConfigError);
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

}  // namespace
