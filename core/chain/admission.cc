// Per-listener connection limits (max_connections), counted across workers in the
// listener's gate. Like HAProxy's maxconn rather than a reset: when a listener is full a
// worker stops accepting on it, so newcomers wait in the kernel's backlog; the few the
// kernel handed over before the accept was cancelled wait here, unserved, and are served
// first when a slot frees. A worker that frees a slot wakes the workers waiting on it.
#include <unistd.h>

#include <algorithm>

#include "chain/worker.hh"

namespace atlas::chain {

void worker::park(listen_socket *ls, int fd) {
    parked_.push_back({fd, ls});
    if (!ls->paused) {
        ls->paused = true;
        if (ls->armed) ring_.cancel(event::make_user_data(ls, event::op::accept));
    }
    ls->listener->gate->wait(this);
    // A slot freed between the failed take and the wait would wake nobody: look again.
    resume_parked();
}

void worker::resume_parked() {
    std::vector<parked_conn> still;
    for (const parked_conn &p : parked_) {
        if (draining_ || p.ls->fd < 0) {
            ::close(p.fd);
        } else if (p.ls->listener->gate->take(p.ls->listener->cfg->max_connections)) {
            serve_accepted(p.ls, p.fd);
        } else {
            still.push_back(p);
        }
    }
    parked_.swap(still);
    for (auto &ls : listens_) {
        if (!ls->paused) continue;
        bool holds = std::any_of(parked_.begin(), parked_.end(), [&](const parked_conn &p) { return p.ls == ls.get(); });
        if (holds) {
            ls->listener->gate->wait(this);
        } else {
            ls->paused = false;
            rearm_accept(ls.get());
        }
    }
}

void worker::release_slot(conn *c) {
    for (worker *w : c->listener->gate->give_back()) {
        // Posted even to this worker: it may be deep in a connection's teardown now.
        w->post([w] { w->resume_parked(); });
    }
}

void worker::drop_parked(const listen_socket *ls) {
    std::erase_if(parked_, [&](const parked_conn &p) {
        if (ls && p.ls != ls) return false;
        ::close(p.fd);
        return true;
    });
}

}  // namespace atlas::chain
