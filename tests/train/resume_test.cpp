// Tests of train/resume: where a resumed run goes on (mid-epoch in the same world, else at the
// next epoch, with the note), which checkpoints are refused, and the notes on a changed plan.
#include "train/resume.hpp"

#include <gtest/gtest.h>

#include <string>

namespace vd {
namespace {

// A checkpoint of 2 ranks, batch 4, 61 rows (8 steps per epoch), written after step 3 of epoch 2.
CheckpointMeta mid_epoch_meta() {
  CheckpointMeta m;
  m.world_size = 2;
  m.step = 11;
  m.cursor = EpochPlan(61, 0, 2, 4).cursor(2, 3);
  m.config_ini = format_options(Options{});
  return m;
}

TEST(Resume, TheSameWorldGoesOnMidEpoch) {
  const CheckpointMeta m = mid_epoch_meta();
  const ResumePoint r = resume_point(m, "c.h5", EpochPlan(61, 1, 2, 4), 2, 4);
  EXPECT_TRUE(r.mid_epoch);
  EXPECT_EQ(r.start_epoch, 2);
  EXPECT_EQ(r.start_step_in_epoch, 3);
  EXPECT_EQ(r.writer_steps_per_epoch, 8);
  EXPECT_EQ(r.note, "");
}

TEST(Resume, AnotherWorldGoesOnAtTheNextEpochAndSaysWhy) {
  const ResumePoint r = resume_point(mid_epoch_meta(), "c.h5", EpochPlan(61, 0, 3, 4), 3, 4);
  EXPECT_FALSE(r.mid_epoch);
  EXPECT_EQ(r.start_epoch, 3);
  EXPECT_EQ(r.start_step_in_epoch, 0);
  EXPECT_EQ(r.note,
            "note: c.h5 was written mid-epoch by 2 rank(s); with 3 rank(s) training continues at "
            "the start of epoch 3");
  // At the writer's epoch end there is nothing to replay and nothing to say.
  CheckpointMeta done = mid_epoch_meta();
  done.cursor = EpochPlan(61, 0, 2, 4).cursor(2, 8);
  const ResumePoint d = resume_point(done, "c.h5", EpochPlan(61, 0, 3, 4), 3, 4);
  EXPECT_EQ(d.start_epoch, 3);
  EXPECT_EQ(d.note, "");
}

TEST(Resume, AnotherModelFamilyIsRefusedNamingBoth) {
  const CheckpointMeta m = mid_epoch_meta();
  Options o;
  o.model = "iwae";
  const std::string other = resume_refusal(m, "c.h5", o, {});
  EXPECT_NE(other.find("the checkpoint c.h5 holds a --model vae model, and this run asks for "
                       "--model iwae; resume with --model vae"),
            std::string::npos)
      << other;
  o.model = "vae";
  EXPECT_EQ(resume_refusal(m, "c.h5", o, {}), "");
}

TEST(Resume, LaterCheckpointsAndAnotherLikelihoodAreRefused) {
  const CheckpointMeta m = mid_epoch_meta();
  Options o;
  o.out = "runs/x";
  EXPECT_EQ(resume_refusal(m, "c.h5", o, {3, 11}), "");
  const std::string later = resume_refusal(m, "c.h5", o, {11, 16});
  EXPECT_NE(later.find("holds checkpoints written after step 11 of c.h5 (the newest is step 16)"),
            std::string::npos)
      << later;
  EXPECT_NE(later.find("--out runs/x_from_step11"), std::string::npos) << later;
  o.likelihood = DecoderLikelihood::Gaussian;
  const std::string other = resume_refusal(m, "c.h5", o, {});
  EXPECT_NE(other.find("trained with --likelihood bernoulli, and this run asks for --likelihood "
                       "gaussian"),
            std::string::npos)
      << other;
}

TEST(Resume, NotesOnAnotherPlanAndOnNothingLeft) {
  Options o;
  o.epochs = 5;
  o.batch_size = 4;
  ResumedPlan p;
  p.writer_steps_per_epoch = 8;
  p.steps_per_epoch = 6;
  p.step = 16;
  p.start_epoch = 3;
  p.planned = 34;
  p.last_step = 34;
  p.rows = 61;
  p.ranks = 3;
  EXPECT_EQ(resumed_plan_notes(p, o),
            "note: the checkpoint's run took 8 steps per epoch; this one takes 6 (3 rank(s) x "
            "batch 4 over 61 rows), so epochs 3..5 end at step 34\n");
  p.steps_per_epoch = 8;
  EXPECT_EQ(resumed_plan_notes(p, o), "");
  p.start_epoch = 6;
  p.last_step = 16;
  EXPECT_EQ(resumed_plan_notes(p, o),
            "note: nothing left to train: the checkpoint is at step 16, after epoch 5 of --epochs "
            "5; raise --epochs to train on\n");
}

TEST(Resume, StepRangesMergeAndAnswerMembership) {
  StepRanges r = add_step_range({}, 10, 12);
  r = add_step_range(r, 3, 4);
  EXPECT_EQ(r, (StepRanges{{3, 4}, {10, 12}}));
  r = add_step_range(r, 5, 9);  // adjacent on both sides: one range
  EXPECT_EQ(r, (StepRanges{{3, 12}}));
  r = add_step_range(r, 20, 20);
  EXPECT_EQ(merge_step_ranges(r, {{11, 21}, {1, 1}}), (StepRanges{{1, 1}, {3, 21}}));
  EXPECT_FALSE(in_step_ranges(r, 2));
  EXPECT_TRUE(in_step_ranges(r, 3));
  EXPECT_TRUE(in_step_ranges(r, 12));
  EXPECT_FALSE(in_step_ranges(r, 13));
  EXPECT_TRUE(in_step_ranges(r, 20));
  EXPECT_FALSE(in_step_ranges({}, 1));
}

}  // namespace
}  // namespace vd
