// offload(): results, exceptions and captured ownership come back intact to
// the coroutine that awaited them, on its own executor.
#include "mover/offload.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <memory>
#include <stdexcept>
#include <thread>

namespace {

namespace asio = boost::asio;

TEST(Offload, SharedCaptureIsReleasedExactlyOnce) {
  asio::io_context io;
  asio::thread_pool pool(2);
  auto owned = std::make_shared<int>(41);
  long during = 0;
  long after = 0;
  int result = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        std::shared_ptr<int> copy = owned;
        auto work = [copy] { return *copy + 1; };
        result = co_await mover::offload(pool, work);
        during = owned.use_count();  // owned, copy and work's capture
      },
      asio::detached);
  io.run();
  after = owned.use_count();
  pool.join();
  EXPECT_EQ(result, 42);
  EXPECT_EQ(during, 3);
  EXPECT_EQ(after, 1);
}

TEST(Offload, ResumesOnTheCallersThreadAndRethrows) {
  asio::io_context io;
  asio::thread_pool pool(1);
  std::thread::id worker;
  std::thread::id resumed;
  bool caught = false;
  bool ran_void = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await mover::offload(pool, [&] {
          worker = std::this_thread::get_id();
          ran_void = true;
        });
        resumed = std::this_thread::get_id();
        try {
          co_await mover::offload(pool, []() -> int { throw std::runtime_error("media"); });
        } catch (const std::runtime_error& e) {
          caught = std::string(e.what()) == "media";
        }
      },
      asio::detached);
  io.run();
  pool.join();
  EXPECT_TRUE(ran_void);
  EXPECT_NE(worker, std::this_thread::get_id());
  EXPECT_EQ(resumed, std::this_thread::get_id());
  EXPECT_TRUE(caught);
}

}  // namespace
