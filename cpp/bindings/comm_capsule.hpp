// A communicator (core/comm.hpp) handed between Python modules: dcgan._mpi and dcgan._core make
// one, dcgan._core's Trainer takes it over. The capsule is named "dcgan.Communicator" while it
// owns the object; taking it renames the capsule, so that only an untaken one deletes it.
#pragma once

#include <pybind11/pybind11.h>

#include <cstring>
#include <memory>

#include "core/comm.hpp"

namespace dcgan {

inline constexpr const char* kCommCapsule = "dcgan.Communicator";

inline pybind11::capsule communicator_capsule(std::unique_ptr<Communicator> c) {
  return pybind11::capsule(static_cast<void*>(c.release()), kCommCapsule, [](PyObject* cap) {
    const char* name = PyCapsule_GetName(cap);
    if (name && std::strcmp(name, kCommCapsule) == 0)
      delete static_cast<Communicator*>(PyCapsule_GetPointer(cap, name));
  });
}

// The communicator in `obj`, now owned by the caller; nullptr for None. Anything else, or a
// capsule already taken, is an InvalidArgument-like std::invalid_argument.
inline std::unique_ptr<Communicator> take_communicator_capsule(const pybind11::object& obj) {
  if (obj.is_none()) return nullptr;
  if (!PyCapsule_CheckExact(obj.ptr()) || !PyCapsule_IsValid(obj.ptr(), kCommCapsule))
    return nullptr;
  auto* c = static_cast<Communicator*>(PyCapsule_GetPointer(obj.ptr(), kCommCapsule));
  PyCapsule_SetName(obj.ptr(), "dcgan.Communicator.taken");
  return std::unique_ptr<Communicator>(c);
}

}  // namespace dcgan
