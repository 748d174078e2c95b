// A mover outside the daemon, for its tests and its benchmark: one
// emulated library (a drive and a changer, cartridges of a given size) in a
// scratch directory, a worker pool, an io_context standing in for the
// session's strand, and a mover::Mover whose hooks record its pauses and
// halts.  The data server is the caller: a LocalPipe end, or a socket.
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "mover/mover.h"
#include "scsi/cdb.h"
#include "tape/registry.h"
#include "tape/tape_head.h"

namespace mover::testing {

class Harness {
 public:
  // `cartridges` cartridges of `capacity` bytes with early warning
  // `early_warning` bytes before their end; the first one loaded.
  Harness(const std::filesystem::path& dir, int cartridges, std::uint64_t capacity,
          std::uint64_t early_warning, const Settings& settings = {})
      : pool_(2) {
    tape::RegistrySpec spec;
    spec.state_dir = dir;
    scsi::emu::LibrarySpec lib;
    lib.name = "h";
    lib.dir = "vtl";
    lib.drives = 1;
    lib.slots = cartridges;
    lib.import_export = 0;
    for (int i = 0; i < cartridges; ++i) {
      lib.cartridges.push_back(
          {"HARN0" + std::to_string(i) + "L6", capacity, capacity - early_warning, false});
    }
    spec.libraries.push_back(lib);
    std::string error;
    registry_ = tape::DeviceRegistry::open(spec, error);
    if (!registry_) throw std::runtime_error(error);
    load(0);
    std::string perr;
    policy_ = *AddressPolicy::make({}, {"127.0.0.1"}, {"127.0.0.1"}, {}, perr);
    Hooks h;
    h.tape = [this] { return head_.get(); };
    h.wrote = [] {};
    h.early_warning = [] {};
    h.paused = [this](ndmp4_mover_pause_reason r, std::uint64_t seek) {
      events.push_back({false, r, seek});
    };
    h.halted = [this](ndmp4_mover_halt_reason r) {
      events.push_back({true, static_cast<int>(r), 0});
    };
    h.tag = [] { return std::string("[harness]"); };
    mover_ = std::make_unique<Mover>(io_.get_executor(), pool_, settings, policy_, std::move(h));
  }
  ~Harness() {
    run([this]() -> boost::asio::awaitable<void> { co_await mover_->shutdown(); });
    mover_.reset();
    pool_.join();
  }

  struct Event {
    bool halted;
    int reason;
    std::uint64_t seek_position;
  };
  std::vector<Event> events;

  Mover& mover() { return *mover_; }
  boost::asio::io_context& io() { return io_; }
  tape::TapeHead& head() { return *head_; }
  // The session no longer has a tape open (what NDMP itself never allows
  // while the mover is active).
  void drop_tape() { head_.reset(); }

  // Moves the cartridge of slot `slot` (0-based) into the drive (the one
  // there back to its slot first) and makes a new head for it.
  void load(int slot) {
    scsi::Bytes none;
    auto changer = registry_->libraries()[0]->changer();
    if (loaded_) {
      changer->execute(
          scsi::cdb::move_medium(0, 256, static_cast<std::uint16_t>(1024 + *loaded_), false), {},
          none);
    }
    changer->execute(scsi::cdb::move_medium(0, static_cast<std::uint16_t>(1024 + slot), 256, false),
                     {}, none);
    loaded_ = slot;
    head_ = std::make_unique<tape::TapeHead>(registry_->find("h.drive0")->device);
    head_->drive().wait_ready(std::chrono::seconds(5));
    head_->rewind();
  }

  // Runs `fn` (a coroutine) and everything it starts until it is done.
  template <class F>
  void run(F fn) {
    bool done = false;
    boost::asio::co_spawn(
        io_,
        [&]() -> boost::asio::awaitable<void> {
          co_await fn();
          done = true;
        },
        boost::asio::detached);
    while (!done) {
      io_.restart();
      io_.run_one_for(std::chrono::seconds(60));
    }
  }
  // Runs the io_context until `pred` holds (or `limit` passes).
  template <class P>
  bool run_until(P pred, std::chrono::seconds limit = std::chrono::seconds(60)) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!pred() && std::chrono::steady_clock::now() < until) {
      io_.restart();
      io_.run_one_for(std::chrono::milliseconds(100));
    }
    return pred();
  }

 private:
  boost::asio::io_context io_;
  boost::asio::thread_pool pool_;
  std::shared_ptr<tape::DeviceRegistry> registry_;
  std::unique_ptr<tape::TapeHead> head_;
  std::optional<int> loaded_;
  AddressPolicy policy_;
  std::unique_ptr<Mover> mover_;
};

}  // namespace mover::testing
