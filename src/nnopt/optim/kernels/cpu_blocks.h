// Parameter blocks of the native kernels: one struct per rule, the C++ side of blocks.py.
//
// A block is declared once here, as an X-macro list of (name, tag) that gives both the struct
// and the layout string nnopt_<rule>_args_layout() returns ("p:ptr,g:ptr,...,l1lr:f64");
// nnopt_<rule>_args_size() returns its sizeof. kernels/blocks.py holds the same fields in the
// same order, and cpu.py uses the library only if both functions agree with it, so a field
// added, moved or renamed on one side only fails loudly at load time instead of silently
// passing lr as eps. Tags: ptr (void*), i32 (int32_t flag, 0 or 1), f64 (double).

#pragma once

#include <cstddef>
#include <cstdint>

#define NNOPT_SGD_ARGS(X)                                                                   \
  X(p, ptr) X(g, ptr) X(buf, ptr)                                                           \
  X(momentum_on, i32) X(nesterov, i32) X(l2_on, i32) X(l1_on, i32)                          \
  X(lr, f64) X(mu, f64) X(l2, f64) X(decay, f64) X(l1lr, f64)

#define NNOPT_ADAGRAD_ARGS(X)                                                               \
  X(p, ptr) X(g, ptr) X(sum, ptr)                                                           \
  X(l2_on, i32) X(l1_on, i32)                                                               \
  X(lr, f64) X(eps, f64) X(l2, f64) X(decay, f64) X(l1lr, f64)

#define NNOPT_RMSPROP_ARGS(X)                                                               \
  X(p, ptr) X(g, ptr) X(square_avg, ptr) X(grad_avg, ptr) X(buf, ptr)                       \
  X(centered, i32) X(momentum_on, i32) X(eps_inside_sqrt, i32) X(l2_on, i32) X(l1_on, i32) \
  X(lr, f64) X(rho, f64) X(eps, f64) X(mu, f64) X(l2, f64) X(decay, f64) X(l1lr, f64)

#define NNOPT_ADAM_ARGS(X)                                                                  \
  X(p, ptr) X(g, ptr) X(exp_avg, ptr) X(exp_avg_sq, ptr) X(max_exp_avg_sq, ptr)             \
  X(amsgrad, i32) X(l2_on, i32) X(l1_on, i32)                                               \
  X(lr, f64) X(beta1, f64) X(beta2, f64) X(bc1, f64) X(bc2_sqrt, f64) X(eps, f64)           \
  X(l2, f64) X(decay, f64) X(l1lr, f64)

#define NNOPT_LION_ARGS(X)                                                                  \
  X(p, ptr) X(g, ptr) X(exp_avg, ptr)                                                       \
  X(l2_on, i32) X(l1_on, i32)                                                               \
  X(lr, f64) X(beta1, f64) X(beta2, f64) X(l2, f64) X(decay, f64) X(l1lr, f64)

#define NNOPT_CTYPE_ptr void*
#define NNOPT_CTYPE_i32 int32_t
#define NNOPT_CTYPE_f64 double
#define NNOPT_MEMBER(name, tag) NNOPT_CTYPE_##tag name;
#define NNOPT_LAYOUT(name, tag) "," #name ":" #tag
#define NNOPT_IS_PTR_ptr 1
#define NNOPT_IS_PTR_i32 0
#define NNOPT_IS_PTR_f64 0
#define NNOPT_COUNT_PTR(name, tag) +NNOPT_IS_PTR_##tag

// The struct, and its layout string and size as C functions (the string skips the first comma).
// kPointers counts the pointer fields, which come first (blocks.fields puts them there, and
// the layout check holds both sides to one order): the many-tensor entry points copy a row of
// that many pointers over the front of the block.
#define NNOPT_BLOCK(Struct, rule, FIELDS)                                                    \
  struct Struct {                                                                            \
    FIELDS(NNOPT_MEMBER)                                                                     \
    static constexpr int kPointers = 0 FIELDS(NNOPT_COUNT_PTR);                              \
  };                                                                                         \
  extern "C" const char* nnopt_##rule##_args_layout() { return FIELDS(NNOPT_LAYOUT) + 1; }  \
  extern "C" size_t nnopt_##rule##_args_size() { return sizeof(Struct); }

NNOPT_BLOCK(SgdArgs, sgd, NNOPT_SGD_ARGS)
NNOPT_BLOCK(AdagradArgs, adagrad, NNOPT_ADAGRAD_ARGS)
NNOPT_BLOCK(RmspropArgs, rmsprop, NNOPT_RMSPROP_ARGS)
NNOPT_BLOCK(AdamArgs, adam, NNOPT_ADAM_ARGS)
NNOPT_BLOCK(LionArgs, lion, NNOPT_LION_ARGS)
