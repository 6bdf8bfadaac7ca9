/* mock.h - `airlock mock`: a standalone OpenAI-compatible upstream built on
 * the simulated model, with fault injection, for tests and benchmarks. */
#ifndef AL_MOCK_H
#define AL_MOCK_H

/* argv starts after "mock".  Runs until SIGTERM/SIGINT; returns exit status. */
int al_mock_main(int argc, char **argv);

#endif
