#include "fleet/admission.h"

#include <gtest/gtest.h>

namespace spillway::fleet {
namespace {

AdmissionTicket ticket(std::uint64_t id, Priority priority) {
  return AdmissionTicket{id, priority, TimePoint{}};
}

std::vector<std::uint64_t> drain(AdmissionQueue& queue) {
  std::vector<std::uint64_t> ids;
  while (auto t = queue.pop())
    ids.push_back(t->id);
  return ids;
}

TEST(Admission, ClassesInOrderFifoWithin) {
  AdmissionQueue queue(10);
  for (auto [id, p] : {std::pair{1, Priority::kBatch},
                       {2, Priority::kStandard},
                       {3, Priority::kInteractive},
                       {4, Priority::kBatch},
                       {5, Priority::kInteractive},
                       {6, Priority::kStandard}}) {
    auto pushed = queue.push(ticket(static_cast<std::uint64_t>(id), p));
    ASSERT_TRUE(pushed.ok());
    EXPECT_FALSE(pushed->has_value());
  }
  EXPECT_EQ(queue.size(), 6u);
  EXPECT_EQ(queue.size(Priority::kBatch), 2u);
  EXPECT_EQ(queue.peek()->id, 3u);
  EXPECT_EQ(drain(queue), (std::vector<std::uint64_t>{3, 5, 2, 6, 1, 4}));
  EXPECT_TRUE(queue.empty());
  EXPECT_FALSE(queue.pop().has_value());
  EXPECT_FALSE(queue.peek().has_value());
}

TEST(Admission, FullQueueDisplacesTheNewestLowerClassTicket) {
  AdmissionQueue queue(3);
  ASSERT_TRUE(queue.push(ticket(1, Priority::kBatch)).ok());
  ASSERT_TRUE(queue.push(ticket(2, Priority::kBatch)).ok());
  ASSERT_TRUE(queue.push(ticket(3, Priority::kStandard)).ok());
  auto pushed = queue.push(ticket(4, Priority::kInteractive));
  ASSERT_TRUE(pushed.ok());
  ASSERT_TRUE(pushed->has_value());
  EXPECT_EQ((*pushed)->id, 2u);  // Newest of the lowest class.
  pushed = queue.push(ticket(5, Priority::kStandard));
  ASSERT_TRUE(pushed.ok());
  EXPECT_EQ((*pushed)->id, 1u);
  // Full of standard and interactive: a standard arrival cannot displace its own class.
  auto refused = queue.push(ticket(6, Priority::kStandard));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_FALSE(queue.push(ticket(7, Priority::kBatch)).ok());
  pushed = queue.push(ticket(8, Priority::kInteractive));
  ASSERT_TRUE(pushed.ok());
  EXPECT_EQ((*pushed)->id, 5u);
  EXPECT_EQ(drain(queue), (std::vector<std::uint64_t>{4, 8, 3}));
}

TEST(Admission, RemoveAndDuplicates) {
  AdmissionQueue queue(4);
  ASSERT_TRUE(queue.push(ticket(1, Priority::kStandard)).ok());
  ASSERT_TRUE(queue.push(ticket(2, Priority::kStandard)).ok());
  EXPECT_EQ(queue.push(ticket(2, Priority::kBatch)).status().code(), ErrorCode::kAlreadyExists);
  EXPECT_TRUE(queue.remove(1));
  EXPECT_FALSE(queue.remove(1));
  EXPECT_FALSE(queue.remove(42));
  EXPECT_EQ(queue.size(), 1u);
  ASSERT_TRUE(queue.push(ticket(1, Priority::kStandard)).ok());  // The id is free again.
  EXPECT_EQ(drain(queue), (std::vector<std::uint64_t>{2, 1}));
}

}  // namespace
}  // namespace spillway::fleet
