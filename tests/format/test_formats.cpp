#include <gtest/gtest.h>
#include "lpsim/format/format.hpp"
TEST(Formats, Fp16Constants) { EXPECT_EQ(lpsim::parse_format("fp16").spec.max_finite(), 65504.0); }
