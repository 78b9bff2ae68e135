// The statistics against textbook values (Anscombe's quartet) and hand computations.
#include <gtest/gtest.h>

#include <cmath>

#include "lpsim/stats/csv_table.hpp"
#include "lpsim/stats/regression.hpp"
#include "lpsim/stats/regression_table.hpp"

namespace lpsim {
namespace {

// Anscombe (1973), data set I: r = 0.816, y = 3.00 + 0.500 x, R^2 = 0.67 (Anscombe's table; more digits from
// any statistics package: r = 0.81642, slope 0.50009, intercept 3.00009).
const std::vector<double> ax = {10, 8, 13, 9, 11, 14, 6, 4, 12, 7, 5};
const std::vector<double> ay = {8.04, 6.95, 7.58, 8.81, 8.33, 9.96, 7.24, 4.26, 10.84, 4.82, 5.68};

TEST(Regression, AnscombeQuartetOne) {
  EXPECT_NEAR(pearson(ax, ay), 0.81642, 5e-5);
  const LineFit f = least_squares(ax, ay);
  EXPECT_NEAR(f.slope, 0.50009, 5e-5);
  EXPECT_NEAR(f.intercept, 3.00009, 5e-5);
  EXPECT_NEAR(f.r2, 0.81642 * 0.81642, 1e-4);
}

TEST(Regression, SpearmanWithTiesByHand) {
  // y ranks 1, 2, 3.5, 5, 3.5: rho = sum(dx dy) / sqrt(sum dx^2 sum dy^2) = 8 / sqrt(10 * 9.5).
  const std::vector<double> x = {1, 2, 3, 4, 5}, y = {5, 6, 7, 8, 7};
  EXPECT_EQ(ranks(y), (std::vector<double>{1, 2, 3.5, 5, 3.5}));
  EXPECT_NEAR(spearman(x, y), 8 / std::sqrt(95.0), 1e-15);
  EXPECT_DOUBLE_EQ(spearman(x, std::vector<double>{1, 4, 9, 16, 25}), 1.0);  // monotone, not linear
}

TEST(Regression, QuantilesInterpolateLikeNumpy) {
  EXPECT_DOUBLE_EQ(quantile({4, 1, 3, 2}, 0.95), 3.85);  // numpy.quantile([1,2,3,4], 0.95)
  EXPECT_DOUBLE_EQ(quantile({4, 1, 3, 2}, 0.5), 2.5);
  EXPECT_EQ(quantile({1, INFINITY, INFINITY}, 0.95), INFINITY);
}

TEST(Regression, LogLogPowerLawAndBootstrap) {
  std::vector<double> x, y;
  for (int i = 1; i <= 20; ++i) x.push_back(std::pow(10.0, -i / 4.0)), y.push_back(3 * std::pow(x.back(), 2));
  x.push_back(-1), y.push_back(1);  // no logarithm: left out
  const Regression r = regress(x, y, true, true, 500, 7);
  EXPECT_EQ(r.n, 20);
  EXPECT_NEAR(r.fit.slope, 2.0, 1e-12);
  EXPECT_NEAR(r.fit.intercept, std::log10(3.0), 1e-12);
  EXPECT_NEAR(r.slope_ci.low, 2.0, 1e-12);  // exact data: every resample gives the same line
  // Noisy data: the interval holds the estimate, and the same seed gives the same interval.
  const Regression a = regress(ax, ay, false, false, 1000, 3), b = regress(ax, ay, false, false, 1000, 3);
  EXPECT_LT(a.slope_ci.low, a.fit.slope);
  EXPECT_GT(a.slope_ci.high, a.fit.slope);
  EXPECT_LT(a.pearson_ci.low, a.pearson);
  EXPECT_EQ(a.slope_ci.low, b.slope_ci.low);
  EXPECT_NE(a.slope_ci.low, regress(ax, ay, false, false, 1000, 4).slope_ci.low);
}

TEST(Regression, TableByGroupFromCsv) {
  const CsvTable t = parse_csv("x,y,g\n1,2,a\n2,4,a\n3,6.5,a\n1,1,b\n2,1,b\n4,1.5,b\n5,5,\"c,d\"\n5,6,\"c,d\"\n", "t.csv");
  const std::string csv = regression_csv(t, {"x", "y", "g", false, false, 100, 0});
  EXPECT_NE(csv.find("\"all\",8,"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\"a\",3,"), std::string::npos);
  EXPECT_EQ(csv.find("\"c,d\""), std::string::npos);  // x constant within the group: no regression
  try {
    t.numbers("z");
    FAIL();
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("no column 'z'"), std::string::npos);
  }
}

}  // namespace
}  // namespace lpsim
