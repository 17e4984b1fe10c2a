#ifndef FLEETWATCH_CNCURSES_SHIM_H
#define FLEETWATCH_CNCURSES_SHIM_H
/* SwiftPM drops ncursesw's pkg-config cflags, so ask for the wide-character API here. */
#define _XOPEN_SOURCE_EXTENDED 1
#define NCURSES_WIDECHAR 1
#include <locale.h>
#include <ncursesw/curses.h>

/* Swift 6 rejects these mutable C globals and cannot import the attribute macros. */
static inline WINDOW *fw_stdscr(void) { return stdscr; }
static inline int fw_cols(void) { return COLS; }
static inline int fw_lines(void) { return LINES; }
static inline attr_t fw_a_bold(void) { return A_BOLD; }
static inline attr_t fw_a_reverse(void) { return A_REVERSE; }
static inline attr_t fw_a_dim(void) { return A_DIM; }
static inline attr_t fw_a_underline(void) { return A_UNDERLINE; }
static inline attr_t fw_color_pair(short n) { return COLOR_PAIR(n); }
#endif
