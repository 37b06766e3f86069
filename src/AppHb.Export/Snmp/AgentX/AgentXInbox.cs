using System.Diagnostics;
using System.Net.Sockets;

namespace AppHb.Export.Snmp.AgentX;

/// <summary>Frames the PDUs of one session out of a receive buffer: one recv(2) brings whatever the master has sent,
/// however many PDUs that is, instead of one call for each header and one for each payload.
/// <para>After an answer it may spin for a moment before blocking (<see cref="ReceiveNext"/>): snmpd walks a table
/// as one AgentX GetNext per varbind, each sent only once the previous one is answered, so a walk is thousands of
/// strictly sequential round trips. Blocking between them costs a wakeup of a sleeping thread on the other core per
/// round trip, most of the round trip on a virtual machine (40 µs against 5-10 µs; docs/benchmarks.md). The spin is
/// bounded, only follows an answer, and yields the core to anything else runnable, so an idle session costs nothing
/// and a busy machine loses nothing to it.</para></summary>
internal sealed class AgentXInbox(TimeSpan spin)
{
    private readonly long _spinTicks = (long)(spin.TotalSeconds * Stopwatch.Frequency);
    private byte[] _buffer = new byte[8192];
    private int _start;
    private int _end;

    /// <summary>The next whole PDU: its header and its payload, valid until the next call.</summary>
    /// <param name="expectSoon">Spin for the configured moment before blocking, because a request was just answered.</param>
    public AgentXHeader ReceiveNext(Socket socket, bool expectSoon, out ReadOnlySpan<byte> payload)
    {
        EnsureBuffered(socket, AgentXHeader.Size, expectSoon);
        var header = AgentXReader.ReadHeader(_buffer.AsSpan(_start, AgentXHeader.Size));
        // ReadHeader bounds the length (AgentXReader.MaxPayload): a header that does not frame ends the session.
        var length = AgentXHeader.Size + (int)header.PayloadLength;
        EnsureBuffered(socket, length, expectSoon: false);
        payload = _buffer.AsSpan(_start + AgentXHeader.Size, (int)header.PayloadLength);
        _start += length;
        return header;
    }

    private void EnsureBuffered(Socket socket, int count, bool expectSoon)
    {
        if (_end - _start >= count)
        {
            return;
        }

        if (_start > 0)
        {
            // Only when the next PDU is incomplete: the partial tail moves to the front, usually a few bytes or none.
            _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
            _end -= _start;
            _start = 0;
        }

        if (_buffer.Length < count)
        {
            Array.Resize(ref _buffer, Math.Max(count, _buffer.Length * 2));
        }

        if (expectSoon && _spinTicks > 0)
        {
            Spin(socket);
        }

        while (_end < count)
        {
            var read = socket.Receive(_buffer.AsSpan(_end), SocketFlags.None);
            if (read == 0)
            {
                throw new IOException("the master agent closed the connection");
            }

            _end += read;
        }
    }

    private void Spin(Socket socket)
    {
        var until = Stopwatch.GetTimestamp() + _spinTicks;
        while (socket.Available == 0 && Stopwatch.GetTimestamp() < until)
        {
            Thread.Yield();
        }
    }
}
