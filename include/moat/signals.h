/* signals.h: how a moat program that waits on the network or on children stops on a signal
 * (src/util/signals.c): the `moat` commands and moat-agent install one handler the same way.
 */
#ifndef MOAT_SIGNALS_H
#define MOAT_SIGNALS_H

/* Installs handler for SIGINT, SIGTERM and extra (0: none), without SA_RESTART, so a wait in
 * progress returns at once with EINTR, and ignores SIGPIPE: a peer that goes away is an
 * error on the write, not a signal. handler MUST be async-signal-safe (set a flag). */
void moat_signals_catch(void (*handler)(int), int extra);

#endif
