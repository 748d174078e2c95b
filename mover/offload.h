// Runs blocking work (filesystem calls, SG_IO, file-backed media) on the
// worker pool and resumes the calling coroutine on its own executor, so
// that the event loop never blocks.
//
// GCC 12 destroys the members of an aggregate or closure prvalue twice when
// the prvalue is part of a co_await expression (its coroutine lowering keeps
// the partial-construction cleanups alive). A closure whose captures have
// destructors (a shared_ptr, a vector) must therefore be named first and
// passed as an lvalue: offload() refuses it as a temporary at compile time.
// offload() itself is not a coroutine, so nothing in it is exposed.
#pragma once

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

namespace mover {

namespace detail {
template <class R>
struct OffloadSignature {
  using type = void(std::exception_ptr, R);
};
template <>
struct OffloadSignature<void> {
  using type = void(std::exception_ptr);
};
}  // namespace detail

template <class F>
auto offload(boost::asio::thread_pool& pool, F&& fn) {
  namespace asio = boost::asio;
  using Fn = std::decay_t<F>;
  using R = std::invoke_result_t<Fn&>;
  static_assert(std::is_lvalue_reference_v<F> || std::is_trivially_destructible_v<Fn>,
                "name a closure with non-trivial captures before co_await (GCC 12 destroys "
                "such temporaries twice)");
  static_assert(std::is_default_constructible_v<R> || std::is_void_v<R>);
  using Signature = typename detail::OffloadSignature<R>::type;
  return asio::async_initiate<const asio::use_awaitable_t<>, Signature>(
      [&pool](auto handler, Fn fn_in) {
        auto home = asio::make_work_guard(asio::get_associated_executor(handler));
        // The work is destroyed on the worker before the caller resumes, so
        // that what it captured is released by then.
        asio::post(pool, [handler = std::move(handler), work = std::optional<Fn>(std::move(fn_in)),
                          home = std::move(home)]() mutable {
          std::exception_ptr failure;
          if constexpr (std::is_void_v<R>) {
            try {
              (*work)();
            } catch (...) {
              failure = std::current_exception();
            }
            work.reset();
            asio::dispatch(home.get_executor(), [handler = std::move(handler), failure]() mutable {
              std::move(handler)(failure);
            });
          } else {
            R result{};
            try {
              result = (*work)();
            } catch (...) {
              failure = std::current_exception();
            }
            work.reset();
            asio::dispatch(home.get_executor(), [handler = std::move(handler), failure,
                                                 result = std::move(result)]() mutable {
              std::move(handler)(failure, std::move(result));
            });
          }
        });
      },
      asio::use_awaitable, Fn(std::forward<F>(fn)));
}

}  // namespace mover
