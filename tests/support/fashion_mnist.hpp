// VD_REQUIRE_FASHION_MNIST(): skips the calling test, saying why, unless launch/setup.sh has
// converted Fashion-MNIST into data/fashion-mnist/{train,test}.h5.
#pragma once
#include <gtest/gtest.h>

#include <filesystem>

#define VD_REQUIRE_FASHION_MNIST()                                                            \
  do {                                                                                        \
    const std::filesystem::path dir =                                                         \
        std::filesystem::path(VD_SOURCE_DIR) / "data" / "fashion-mnist";                      \
    if (!std::filesystem::is_regular_file(dir / "train.h5") ||                                \
        !std::filesystem::is_regular_file(dir / "test.h5"))                                   \
      GTEST_SKIP() << "no " << dir.string() << "/{train,test}.h5: run launch/setup.sh first"; \
  } while (0)
